//! Sign-outs reach every instance: the one that took it announces it, and each ends the user's older tokens and sockets.

use std::sync::Arc;

use async_nats::client::Client;
use cordon_core::UserId;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::wire::{SIGN_OUTS, SignOut};

/// What an instance does when it hears of a sign-out: forget tokens below
/// the generation and close the user's sockets opened with them.
pub type OnSignOut = Arc<dyn Fn(&UserId, u32) + Send + Sync>;

pub async fn announce(broker: &Client, user_id: &UserId, generation: u32) {
    let message = SignOut {
        user_id: user_id.clone(),
        generation,
    };
    let Ok(body) = serde_json::to_vec(&message) else {
        return;
    };
    // Lost while the broker is down: the others' token caches expire within a second.
    if let Err(error) = broker.publish(SIGN_OUTS, body.into()).await {
        tracing::warn!(%error, "could not announce a sign-out");
    }
}

/// Subscribes, then returns the loop that applies sign-outs until `stop` fires.
pub async fn listen(
    broker: Client,
    on_sign_out: OnSignOut,
    stop: CancellationToken,
) -> Result<impl std::future::Future<Output = ()>, async_nats::SubscribeError> {
    let mut messages = broker.subscribe(SIGN_OUTS).await?;
    Ok(async move {
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return,
                message = messages.next() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            match serde_json::from_slice::<SignOut>(&message.payload) {
                Ok(sign_out) => on_sign_out(&sign_out.user_id, sign_out.generation),
                Err(error) => tracing::debug!(%error, "ignored a malformed sign-out"),
            }
        }
    })
}
