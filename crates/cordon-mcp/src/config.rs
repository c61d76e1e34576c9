//! How an operator declares an MCP server: the `[mcp_servers.NAME]` tables of the config file.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A call that has not answered within this long is a tool error.
const DEFAULT_CALL_TIMEOUT_SECS: f64 = 30.0;

/// One `[mcp_servers.NAME]` table as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// stdio: the program to start (found on `PATH`), its arguments and extra environment.
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Streamable HTTP: the endpoint and headers sent with every request.
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Seconds a call may take before it is a tool error (default 30).
    pub timeout_secs: Option<f64>,
    /// Each user reaches the server with their own connection, its headers'
    /// `{secret.NAME}` filled from that user's stored secret (streamable HTTP only).
    #[serde(default)]
    pub per_user: bool,
}

/// Environment and header values are credentials as often as not.
impl fmt::Debug for McpServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpServerConfig")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout_secs", &self.timeout_secs)
            .field("per_user", &self.per_user)
            .finish()
    }
}

/// A checked server declaration.
#[derive(Debug, Clone)]
pub struct McpServer {
    pub name: String,
    pub transport: McpTransport,
    pub call_timeout: Duration,
    /// A connection per user, headers filled from that user's secrets.
    pub per_user: bool,
}

#[derive(Clone)]
pub enum McpTransport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

impl fmt::Debug for McpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdio { command, args, .. } => {
                write!(f, "stdio `{command}` {args:?}")
            }
            Self::Http { url, .. } => write!(f, "streamable HTTP {url}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum McpConfigError {
    #[error(
        "MCP server name `{0}` must be letters, digits, `_` or `-` (its tools are named `{0}.tool`)"
    )]
    BadName(String),
    #[error("MCP server `{0}` needs exactly one of `command` (stdio) or `url` (streamable HTTP)")]
    Transport(String),
    #[error("MCP server `{0}`: `args` and `env` are for `command`, `headers` for `url`")]
    Misplaced(String),
    #[error("MCP server `{0}`: `timeout_secs` must be a positive number of seconds")]
    Timeout(String),
    #[error("MCP server `{0}`: {1}")]
    Template(String, String),
    #[error(
        "MCP server `{0}`: `{{secret.NAME}}` in a header needs `per_user = true` (each user's own secret)"
    )]
    SecretWithoutUser(String),
    #[error("MCP server `{0}`: `per_user` servers are streamable HTTP (`url`)")]
    PerUserStdio(String),
}

impl McpServerConfig {
    /// Checks the table named `name`.
    pub fn check(self, name: &str) -> Result<McpServer, McpConfigError> {
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(McpConfigError::BadName(name.to_owned()));
        }
        let transport = match (self.command, self.url) {
            (Some(command), None) if self.headers.is_empty() => McpTransport::Stdio {
                command,
                args: self.args,
                env: self.env,
            },
            (None, Some(url)) if self.args.is_empty() && self.env.is_empty() => {
                McpTransport::Http {
                    url,
                    headers: self.headers,
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(McpConfigError::Misplaced(name.to_owned()));
            }
            _ => return Err(McpConfigError::Transport(name.to_owned())),
        };
        check_secrets(name, &transport, self.per_user)?;
        let secs = self.timeout_secs.unwrap_or(DEFAULT_CALL_TIMEOUT_SECS);
        let call_timeout = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|timeout| !timeout.is_zero())
            .ok_or_else(|| McpConfigError::Timeout(name.to_owned()))?;
        Ok(McpServer {
            name: name.to_owned(),
            transport,
            call_timeout,
            per_user: self.per_user,
        })
    }
}

/// Secrets in headers only where each user brings their own.
fn check_secrets(
    name: &str,
    transport: &McpTransport,
    per_user: bool,
) -> Result<(), McpConfigError> {
    let McpTransport::Http { headers, .. } = transport else {
        return match per_user {
            true => Err(McpConfigError::PerUserStdio(name.to_owned())),
            false => Ok(()),
        };
    };
    for value in headers.values() {
        let secrets = crate::template::secrets_in(value)
            .map_err(|why| McpConfigError::Template(name.to_owned(), why))?;
        if !secrets.is_empty() && !per_user {
            return Err(McpConfigError::SecretWithoutUser(name.to_owned()));
        }
    }
    Ok(())
}

impl McpServer {
    /// The secrets a per-user server's headers are filled with, by name.
    pub(crate) fn secret_names(&self) -> Vec<String> {
        let McpTransport::Http { headers, .. } = &self.transport else {
            return Vec::new();
        };
        let mut names: Vec<String> = headers
            .values()
            .flat_map(|value| crate::template::secrets_in(value).unwrap_or_default())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<McpServer, McpConfigError> {
        let config: McpServerConfig = toml::from_str(text).expect("valid TOML");
        config.check("srv")
    }

    #[test]
    fn stdio_and_http_servers_are_told_apart() {
        let stdio = parse("command = \"node\"\nargs = [\"x.js\"]").expect("stdio");
        assert!(matches!(stdio.transport, McpTransport::Stdio { .. }));
        assert_eq!(stdio.call_timeout, Duration::from_secs(30));
        let http = parse("url = \"http://127.0.0.1:1/mcp\"\ntimeout_secs = 2.5").expect("http");
        assert!(matches!(http.transport, McpTransport::Http { .. }));
        assert_eq!(http.call_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn a_declaration_that_is_neither_or_both_is_refused() {
        assert!(matches!(parse(""), Err(McpConfigError::Transport(_))));
        assert!(matches!(
            parse("command = \"a\"\nurl = \"http://b\""),
            Err(McpConfigError::Transport(_))
        ));
        assert!(matches!(
            parse("url = \"http://b\"\nargs = [\"x\"]"),
            Err(McpConfigError::Misplaced(_))
        ));
        assert!(matches!(
            parse("command = \"a\"\ntimeout_secs = 0"),
            Err(McpConfigError::Timeout(_))
        ));
        let config: McpServerConfig = toml::from_str("command = \"a\"").expect("valid");
        assert!(matches!(
            config.check("a.b"),
            Err(McpConfigError::BadName(_))
        ));
    }

    #[test]
    fn secrets_in_headers_need_a_per_user_http_server() {
        let per_user = parse(
            "url = \"http://b\"\nper_user = true\nheaders = { Authorization = \"Bearer {secret.tok}\" }",
        )
        .expect("per-user");
        assert_eq!(per_user.secret_names(), ["tok"]);
        assert!(matches!(
            parse("url = \"http://b\"\nheaders = { A = \"{secret.tok}\" }"),
            Err(McpConfigError::SecretWithoutUser(_))
        ));
        assert!(matches!(
            parse("command = \"a\"\nper_user = true"),
            Err(McpConfigError::PerUserStdio(_))
        ));
        assert!(matches!(
            parse("url = \"http://b\"\nper_user = true\nheaders = { A = \"{secret.}\" }"),
            Err(McpConfigError::Template(..))
        ));
    }

    #[test]
    fn debug_never_shows_credentials() {
        let config: McpServerConfig =
            toml::from_str("url = \"http://b\"\nheaders = { Authorization = \"Bearer s3cret\" }")
                .expect("valid");
        let shown = format!("{config:?} {:?}", config.clone().check("b").expect("ok"));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("Authorization"));
    }
}
