//! The isolation promise under load: many users, several sockets each, all at once; nobody sees anyone else's events.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::collections::{BTreeMap, HashMap};

use cordon_test_support::on_each_database;
use cordon_test_support::postgres::Database;
use cordon_test_support::{Account, TestServer, WsClient};
use futures_util::future::join_all;
use serde_json::{Value, json};

on_each_database!(concurrent_users_receive_exactly_their_own_events_in_order,);

const USERS: usize = 24;
const CONNECTIONS_PER_USER: usize = 3;
const MESSAGES_PER_USER: usize = 2;
/// agent_started, 3 × agent_thinking, tool_executing, tool_completed, agent_completed.
/// `thread_created` and seven run events.
const EVENTS_PER_RUN: usize = 8;

struct UserRun {
    account: Account,
    sockets: Vec<WsClient>,
}

/// Reads frames until `runs` runs have ended; returns every run event seen.
async fn read_runs(ws: &mut WsClient, runs: usize) -> Vec<Value> {
    let mut ended = 0;
    let mut events = Vec::new();
    while ended < runs {
        let frame = ws.next_json().await;
        match frame["type"].as_str().unwrap() {
            "ping" => continue,
            "agent_completed" | "agent_error" => ended += 1,
            _ => {}
        }
        events.push(frame);
    }
    events
}

async fn concurrent_users_receive_exactly_their_own_events_in_order(database: Database) {
    let Some(server) = TestServer::start_storing_in(database, |_| {}).await else {
        return;
    };
    let mut users = Vec::new();
    for i in 0..USERS {
        let account = server.register(&format!("user{i:02}")).await;
        let mut sockets = Vec::new();
        for _ in 0..CONNECTIONS_PER_USER {
            sockets.push(server.connect(&account).await);
        }
        users.push(UserRun { account, sockets });
    }

    let outcomes = join_all(
        users
            .into_iter()
            .enumerate()
            .map(|(i, mut user)| async move {
                for m in 0..MESSAGES_PER_USER {
                    let content = format!("user {i} asks: what is {i} * 100 + {m}?");
                    user.sockets[m % CONNECTIONS_PER_USER]
                        .send_json(&json!({"type": "user_message", "content": content}))
                        .await;
                }
                let mut per_socket = Vec::new();
                for ws in &mut user.sockets {
                    per_socket.push(read_runs(ws, MESSAGES_PER_USER).await);
                }
                (i, user.account, per_socket)
            }),
    )
    .await;

    let mut runs_by_user: HashMap<String, usize> = HashMap::new();
    for (i, account, per_socket) in outcomes {
        let first = &per_socket[0];
        for events in &per_socket {
            assert_eq!(
                events, first,
                "every connection of a user sees the same stream"
            );
        }
        assert_eq!(first.len(), MESSAGES_PER_USER * EVENTS_PER_RUN);
        let seqs: Vec<u64> = first.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let expected: Vec<u64> = (1..=first.len() as u64).collect();
        assert_eq!(seqs, expected, "seq is gap-free and ordered per user");

        let mut by_run: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for event in first {
            by_run
                .entry(event["run_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(event);
        }
        assert_eq!(by_run.len(), MESSAGES_PER_USER);
        for (run_id, events) in &by_run {
            let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
            assert_eq!(kinds.first(), Some(&"thread_created"));
            assert_eq!(kinds[1], "agent_started");
            assert_eq!(kinds.last(), Some(&"agent_completed"));
            assert!(kinds.contains(&"tool_executing") && kinds.contains(&"tool_completed"));
            // The answer is computed from this user's own question.
            let answer = events.last().unwrap()["answer"].as_str().unwrap();
            let value: u64 = answer
                .rsplit(" = ")
                .next()
                .unwrap()
                .trim_end_matches('.')
                .parse()
                .unwrap();
            assert_eq!(
                value / 100,
                i as u64,
                "user {i} run {run_id} answered someone else: {answer}"
            );
            // The REST API agrees that the run is this user's.
            let (status, run) = server
                .get_json(&account, &format!("/api/runs/{run_id}"))
                .await;
            assert_eq!((status, run["status"].as_str()), (200, Some("completed")));
        }
        *runs_by_user.entry(account.user_id).or_default() += by_run.len();
    }
    assert_eq!(runs_by_user.len(), USERS);
    assert!(runs_by_user.values().all(|&runs| runs == MESSAGES_PER_USER));
}
