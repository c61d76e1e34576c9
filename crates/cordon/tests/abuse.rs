//! A hostile client against the real server: racing the login throttle, locking out an owner, too many sockets, message floods, oversized frames, tokens in URLs, name probes.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::time::Duration;

use cordon_test_support::{PASSWORD, TestServer, WsClient, is_terminal};
use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A login attempt as from `forwarded_for` (believed only behind a trusted proxy).
async fn login(
    server: &TestServer,
    username: &str,
    password: &str,
    forwarded_for: &str,
) -> (u16, Option<u64>) {
    let response = server
        .http
        .post(server.url("/api/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (response.status().as_u16(), retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_gets_exactly_the_free_attempts_verified() {
    let server = TestServer::start().await;
    server.register("alice").await;
    let attempts = (0..25).map(|_| login(&server, "alice", "not the password", "192.0.2.1"));
    let answers = join_all(attempts).await;
    let verified = answers.iter().filter(|(status, _)| *status == 401).count();
    let delayed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 429)
        .collect();
    assert_eq!(
        verified, 5,
        "only the free attempts reach the hash: {answers:?}"
    );
    assert_eq!(delayed.len(), 20, "{answers:?}");
    assert!(
        delayed
            .iter()
            .all(|(_, retry)| retry.is_some_and(|s| (1..=60).contains(&s)))
    );
}

#[tokio::test]
async fn the_owner_gets_in_from_elsewhere_while_a_guesser_is_held_off() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    server.register("bob").await;
    for _ in 0..12 {
        login(&server, "bob", "guess", "203.0.113.7").await;
    }
    let (status, retry_after) = login(&server, "bob", PASSWORD, "203.0.113.7").await;
    assert_eq!(
        status, 429,
        "the guesser's address is held off, even with the right password"
    );
    assert!(retry_after.is_some());
    let (status, _) = login(&server, "bob", PASSWORD, "198.51.100.2").await;
    assert_eq!(
        status, 200,
        "the owner, from another address, is not locked out"
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let server = TestServer::start().await;
    server.register("carl").await;
    for i in 0..5 {
        let (status, _) = login(&server, "carl", "guess", &format!("198.51.100.{i}")).await;
        assert_eq!(status, 401);
    }
    let (status, _) = login(&server, "carl", "guess", "198.51.100.99").await;
    assert_eq!(
        status, 429,
        "a made-up X-Forwarded-For does not buy more guesses"
    );
}

/// The status and JSON body of a refused upgrade.
async fn refused_upgrade(server: &TestServer, token: &str) -> (u16, Value) {
    match WsClient::connect_or_refusal(&server.ws_url(), token).await {
        Err(refusal) => refusal,
        Ok(_) => panic!("the upgrade was not refused"),
    }
}

#[tokio::test]
async fn a_ninth_socket_of_one_user_is_refused_and_a_slot_frees_when_one_closes() {
    let server = TestServer::start().await;
    let dana = server.register("dana").await;
    let mut sockets = Vec::new();
    for _ in 0..8 {
        sockets.push(server.connect(&dana).await);
    }
    let (status, body) = refused_upgrade(&server, &dana.token).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
    let erin = server.register("erin").await;
    server.connect(&erin).await; // other users are not affected

    sockets.pop().unwrap().close().await;
    for attempt in 0.. {
        if WsClient::connect_or_refusal(&server.ws_url(), &dana.token)
            .await
            .is_ok()
        {
            break;
        }
        assert!(attempt < 100, "the closed socket's slot was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn messages_over_the_rate_limit_are_refused_and_the_socket_stays_open() {
    let server = TestServer::start_with(|c| {
        c.engine.messages_per_minute = 3;
        c.engine.max_runs_per_user = 10;
    })
    .await;
    let fay = server.register("fay").await;
    let mut ws = server.connect(&fay).await;
    for i in 0..4 {
        ws.send_json(&json!({"type": "user_message", "content": format!("what is {i} + 1?")}))
            .await;
    }
    let refusal = ws.collect_until(|f| f["type"] == "error").await;
    let refusal = refusal.last().unwrap();
    assert_eq!(refusal["code"], "rate_limited", "{refusal}");
    let retry_after_ms = refusal["retry_after_ms"].as_u64().unwrap();
    assert!(retry_after_ms > 0 && retry_after_ms <= 20_000, "{refusal}");
    ws.send_json(&json!({"type": "ping"})).await;
    ws.collect_until(|f| f["type"] == "pong").await;

    let (status, body) = server
        .post_json(&fay, "/api/messages", &json!({"content": "and over REST?"}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let (_, threads) = server.get_json(&fay, "/api/threads").await;
    assert_eq!(
        threads.as_array().unwrap().len(),
        3,
        "refused messages stored nothing"
    );
}

#[tokio::test]
async fn a_socket_refused_as_rate_limited_is_not_read_until_its_wait_is_over() {
    let server = TestServer::start_with(|c| c.engine.messages_per_minute = 1).await;
    let ivy = server.register("ivy").await;
    let mut ws = server.connect(&ivy).await;
    ws.ask("what is 1 + 1?").await;
    for i in 0..30 {
        ws.send_json(&json!({"type": "user_message", "content": format!("flood {i}")}))
            .await;
    }
    let refusals = |frames: &[(Duration, Value)]| {
        frames
            .iter()
            .filter(|(_, f)| f["code"] == "rate_limited")
            .map(|(at, _)| *at)
            .collect::<Vec<_>>()
    };
    let started = tokio::time::Instant::now();
    let mut answers = Vec::new();
    while let Some(frame) = ws
        .try_next_json(Duration::from_millis(2500).saturating_sub(started.elapsed()))
        .await
    {
        answers.push((started.elapsed(), frame));
    }
    let refused = refusals(&answers);
    // Unpaused, all 30 are answered at once; paused, about one a second.
    assert!(
        (1..=4).contains(&refused.len()),
        "{} refusals in 2.5 s, at {refused:?}",
        refused.len()
    );
    for pair in refused.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(900),
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn a_frame_over_64_kib_is_answered_and_the_socket_stays_open() {
    let server = TestServer::start().await;
    let gus = server.register("gus").await;
    let mut ws = server.connect(&gus).await;
    ws.send_text(&"x".repeat(70 * 1024)).await;
    let answer = ws.next_json().await;
    assert_eq!(answer["type"], "error");
    assert_eq!(answer["code"], "frame_too_large", "{answer}");
    ws.send_json(&json!({"type": "ping"})).await;
    ws.collect_until(|f| f["type"] == "pong").await;
}

#[tokio::test]
async fn tokens_are_refused_in_rest_urls_and_ride_a_subprotocol_on_the_socket() {
    let server = TestServer::start().await;
    let hal = server.register("hal").await;
    let response = server
        .http
        .get(server.url(&format!("/api/threads?token={}", hal.token)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let mut request = server.ws_url().into_client_request().unwrap();
    let protocols =
        HeaderValue::from_str(&format!("cordon.v1, cordon.token.{}", hal.token)).unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocols);
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "cordon.v1");
    let mut ws = WsClient::from_stream(socket).await;
    ws.send_json(&json!({"type": "ping"})).await;
    ws.collect_until(|f| f["type"] == "pong").await;
}

#[tokio::test]
async fn sign_ups_are_throttled_per_address_and_a_taken_name_is_refused_before_the_hash() {
    let server = TestServer::start_with(|c| c.signups_per_hour = 3).await;
    let register = |name: &'static str| {
        server
            .http
            .post(server.url("/api/auth/register"))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
    };
    assert_eq!(register("ivy").await.unwrap().status(), 201);
    let taken = register("ivy").await.unwrap();
    assert_eq!(
        taken.status(),
        409,
        "a taken name is still answered, but counts"
    );
    assert_eq!(register("jon").await.unwrap().status(), 201);
    let throttled = register("kim").await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_signups");
}

#[tokio::test]
async fn a_quiet_sign_up_answers_the_same_for_free_and_taken_names() {
    let server = TestServer::start_with(|c| c.quiet_signup = true).await;
    let server = &server;
    let register = |password: &'static str| async move {
        let response = server
            .http
            .post(server.url("/api/auth/register"))
            .json(&json!({"username": "ivy", "password": password}))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    let free = register(PASSWORD).await;
    let taken = register("another-password").await;
    assert_eq!(free, (202, r#"{"status":"accepted"}"#.to_owned()));
    assert_eq!(taken, free, "a prober learns nothing");
    assert_eq!(login(server, "ivy", PASSWORD, "").await.0, 200);
    assert_eq!(
        login(server, "ivy", "another-password", "").await.0,
        401,
        "the taken name kept its owner's password"
    );
    let invalid = server
        .http
        .post(server.url("/api/auth/register"))
        .json(&json!({"username": "x", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400, "bad input is still told apart");
}

#[tokio::test]
async fn a_peer_that_never_reads_is_closed_within_the_write_timeout() {
    let server = TestServer::start_with(|c| {
        c.write_timeout = Duration::from_secs(1);
        c.engine.messages_per_minute = 1000;
    })
    .await;
    let kai = server.register("kai").await;
    // A socket with a tiny receive window whose owner never reads it.
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(server.addr).await.unwrap();
    let mut request = server.ws_url().into_client_request().unwrap();
    let bearer = HeaderValue::from_str(&format!("Bearer {}", kai.token)).unwrap();
    request.headers_mut().insert("authorization", bearer);
    let (_stalled, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();

    // Kai's other socket makes events until the stalled one's write blocks.
    let mut ws = server.connect(&kai).await;
    for i in 0..120 {
        // A long expression is echoed in the run's thinking and tool events: ~60 KB a run.
        let expression = format!("{i}{}", "+1".repeat(10_000));
        ws.send_json(&json!({"type": "user_message", "content": format!("what is {expression}?")}))
            .await;
        ws.collect_until(is_terminal).await;
        if timeouts(&server).await > 0 {
            return;
        }
    }
    for _ in 0..50 {
        if timeouts(&server).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the stalled socket's write never timed out");
}

async fn timeouts(server: &TestServer) -> u64 {
    server
        .metrics_text()
        .await
        .lines()
        .find_map(|line| line.strip_prefix("cordon_ws_write_timeouts_total "))
        .map_or(0, |n| n.trim().parse().unwrap_or(0))
}

/// Whether the server closes `stream` (EOF or reset) within `within`,
/// reading and dropping whatever it sends first.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buffer = [0_u8; 1024];
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn slow_headers_slow_bodies_and_idle_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start_with(|c| {
        c.header_timeout = Duration::from_millis(500);
        c.body_timeout = Duration::from_millis(500);
    })
    .await;
    // Slowloris: headers that never end.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: cordon\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5))
            .await
            .is_some(),
        "slow headers kept open"
    );

    // An idle keep-alive connection after one request.
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: cordon\r\n\r\n")
        .await
        .unwrap();
    let answered = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(
        answered.is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "idle connection kept open"
    );

    // A body that never arrives.
    let mut trickle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    trickle
        .write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: cordon\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
        .await
        .unwrap();
    let answer = closed_within(&mut trickle, Duration::from_secs(5)).await;
    assert!(answer.is_some(), "a stalled body kept the connection open");
}
