//! What only the PostgreSQL store does: refusing a second instance on its database, and a bad URL.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use cordon_core::{Store, StoreError};
use cordon_store::{PgStore, StoreOptions};

#[tokio::test]
async fn a_second_instance_on_one_database_is_refused_until_the_first_closes() {
    let Some(server) = cordon_test_support::postgres::test_server() else {
        return;
    };
    let url = cordon_test_support::postgres::fresh_database(&server).await;
    let first = PgStore::open(&url, StoreOptions::default()).await.unwrap();
    let second = PgStore::open(&url, StoreOptions::default()).await;
    let Err(StoreError::Backend(why)) = second else {
        panic!("a second instance opened the same database");
    };
    assert!(why.contains("another cordon instance"), "{why}");
    first.close().await;
    drop(first);
    // The lock goes with the first store's connection.
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(store) = PgStore::open(&url, StoreOptions::default()).await {
            reopened = Some(store);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    reopened
        .expect("the database could be opened again")
        .ping()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_that_does_not_repeat_the_password() {
    let url = "postgres://cordon:hunter2-secret@127.0.0.1:1/cordon";
    let Err(error) = PgStore::open(url, StoreOptions::default()).await else {
        panic!("opened a database on port 1");
    };
    assert!(!error.to_string().contains("hunter2"), "{error}");
}
