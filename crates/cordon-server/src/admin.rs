//! The admin role outside the server: `cordon admin grant|revoke` sets a user's flag in the store a server uses (it may be running on it).

use std::sync::Arc;

use cordon_core::Store;
use cordon_store::{DATABASE_FILE, PgStore, SqliteStore, StoreOptions};
use secrecy::ExposeSecret;

use crate::config::ServerConfig;
use crate::server::ServeError;

/// Sets or clears the `admin` flag of the user named `username` in the
/// database `config` names; answers whether there is such a user.
/// PostgreSQL is opened as a shared database: this hands out no `seq`, so it
/// may run beside a live instance.
pub async fn set_admin(
    config: &ServerConfig,
    username: &str,
    admin: bool,
) -> Result<bool, ServeError> {
    let options = StoreOptions {
        shared: true,
        ..StoreOptions::default()
    };
    let store: Arc<dyn Store> = match &config.database_url {
        Some(url) => PgStore::open(url.expose_secret(), options).await?,
        None if !config.data_dir.join(DATABASE_FILE).exists() => {
            return Err(ServeError::NoDatabase(config.data_dir.clone()));
        }
        None => SqliteStore::open_with(&config.data_dir, options).await?,
    };
    let found = store.set_admin(username, admin).await;
    store.close().await;
    Ok(found?)
}
