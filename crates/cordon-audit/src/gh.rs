//! Running `gh` commands for `close-report --execute`, with an explicit PATH when given.

use std::ffi::OsString;
use std::process::Command;

/// How to find `gh`: an explicit program (`--gh`) or `gh` looked up on PATH.
#[derive(Clone, Debug)]
pub struct GhRunner {
    program: OsString,
    /// PATH for the child (and for finding `gh`); `None` inherits the process's PATH.
    path_env: Option<OsString>,
}

/// One executed command for the execution log.
#[derive(Clone, Debug)]
pub struct CommandLog {
    pub command: String,
    pub exit_code: Option<i32>,
    pub output: String,
}

impl CommandLog {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

impl GhRunner {
    pub fn new(program: Option<OsString>, path_env: Option<OsString>) -> GhRunner {
        GhRunner {
            program: program.unwrap_or_else(|| OsString::from("gh")),
            path_env,
        }
    }

    /// Runs `gh ARGS`; spawn failures are logged, not raised, so the log stays complete.
    pub fn run(&self, args: &[String]) -> CommandLog {
        let mut cmd = Command::new(&self.program);
        cmd.args(args);
        // Setting PATH on the Command also makes std resolve `gh` against it.
        if let Some(path) = &self.path_env {
            cmd.env("PATH", path);
        }
        let command = display(args);
        match cmd.output() {
            Ok(out) => {
                let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
                output.push_str(&String::from_utf8_lossy(&out.stderr));
                CommandLog {
                    command,
                    exit_code: out.status.code(),
                    output,
                }
            }
            Err(e) => CommandLog {
                command,
                exit_code: None,
                output: format!("cannot run {}: {e}", self.program.to_string_lossy()),
            },
        }
    }
}

/// `gh` followed by shell-quoted arguments, ready to paste.
pub fn display(args: &[String]) -> String {
    let mut s = String::from("gh");
    for a in args {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}
