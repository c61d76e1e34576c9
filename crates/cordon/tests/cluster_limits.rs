//! Per-user limits across several real `cordon serve` instances on one PostgreSQL database and one real `nats-server`: the socket cap counts every live instance's sockets, and a killed instance's stop counting.
//!
//! Needs `CORDON_TEST_DATABASE_URL` and `nats-server` (`.ci/run` provides
//! both); skipped without them outside CI.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::time::Duration;

use cordon_test_support::child::ChildServer;
use cordon_test_support::cluster::TestCluster;
use cordon_test_support::{Account, WsClient};

const CAP: [&str; 2] = ["--max-sockets-per-user", "3"];

async fn open(server: &ChildServer, account: &Account) -> WsClient {
    WsClient::connect_or_refusal(&server.ws_url(), &account.token)
        .await
        .unwrap_or_else(|refusal| panic!("the socket was refused: {refusal:?}"))
}

fn assert_refused(outcome: Result<WsClient, (u16, serde_json::Value)>) {
    let Err((status, body)) = outcome else {
        panic!("a socket over the cap was accepted");
    };
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
}

async fn refused(server: &ChildServer, account: &Account) {
    assert_refused(WsClient::connect_or_refusal(&server.ws_url(), &account.token).await);
}

/// A socket once a slot frees (a close or a death is noticed in the background).
async fn open_once_free(server: &ChildServer, account: &Account) -> WsClient {
    for _ in 0..100 {
        if let Ok(socket) = WsClient::connect_or_refusal(&server.ws_url(), &account.token).await {
            return socket;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no slot freed within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_cap_counts_every_live_instance_and_forgets_a_killed_one() {
    let Some(mut cluster) = TestCluster::new(env!("CARGO_BIN_EXE_cordon")).await else {
        return;
    };
    let a = cluster.instance_with(0, &CAP).await;
    let b = cluster.instance_with(0, &CAP).await;
    let ada = a.register("ada").await;
    let mut on_a = vec![open(&a, &ada).await, open(&a, &ada).await];
    let _on_b = open(&b, &ada).await;
    refused(&a, &ada).await;
    refused(&b, &ada).await;

    let bea = b.register("bea").await;
    let _beas = [
        open(&a, &bea).await,
        open(&b, &bea).await,
        open(&b, &bea).await,
    ];

    // A socket closed on A frees a slot for B.
    on_a.pop().unwrap().close().await;
    let _second_on_b = open_once_free(&b, &ada).await;
    refused(&a, &ada).await;

    // A burst over both instances cannot overshoot: claims are serialized per user.
    let cy = a.register("cyd").await;
    let urls = [a.ws_url(), b.ws_url()];
    let burst = (0..10).map(|n| WsClient::connect_or_refusal(&urls[n % 2], &cy.token));
    let outcomes = futures_util::future::join_all(burst).await;
    let (opened, refusals): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(Result::is_ok);
    assert_eq!(opened.len(), 3, "exactly the cap is open");
    refusals.into_iter().for_each(assert_refused);

    // A killed instance's sockets are gone with it: they stop counting.
    a.kill();
    let _third_on_b = open_once_free(&b, &ada).await;
    refused(&b, &ada).await;
}
