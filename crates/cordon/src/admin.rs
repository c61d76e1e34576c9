//! `cordon admin grant|revoke USERNAME`: the admin role, set on the data dir or database a server uses.

use anyhow::{Context, bail};
use cordon_server::ServerConfig;

use crate::cli::{AdminAction, AdminArgs};

pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    let (username, admin) = match args.action {
        AdminAction::Grant { username } => (username, true),
        AdminAction::Revoke { username } => (username, false),
    };
    let mut config = ServerConfig::new(args.data_dir);
    config.database_url = args.database_url;
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    let found = runtime.block_on(cordon_server::admin::set_admin(&config, &username, admin))?;
    if !found {
        bail!("no user is named {username:?}");
    }
    let now = if admin { "is now" } else { "is no longer" };
    println!("{username} {now} an admin");
    Ok(())
}
