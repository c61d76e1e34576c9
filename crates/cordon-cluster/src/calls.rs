//! Serves the calls other instances forward to this one: each is answered by this instance's engines, or `Moved` if it does not own the user.

use std::sync::Arc;

use async_nats::Message;
use async_nats::client::Client;
use cordon_core::Store;
use cordon_engine::{Accepted, ExecutionEngineFactory};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::wire::{Answer, Call};

/// Longest a leaving instance answers the calls that reached it before it unsubscribed.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Subscribes, then returns the loop that answers forwarded calls until `stop` fires.
pub async fn serve(
    broker: Client,
    subject: String,
    factory: Arc<ExecutionEngineFactory>,
    store: Arc<dyn Store>,
    stop: CancellationToken,
) -> Result<impl std::future::Future<Output = ()>, async_nats::SubscribeError> {
    let mut calls = broker.subscribe(subject).await?;
    let owner = Owner { factory, store };
    Ok(async move { answer_each(&broker, &mut calls, Arc::new(owner), &stop).await })
}

/// What answers a call: this instance's engines, and the store they write to.
struct Owner {
    factory: Arc<ExecutionEngineFactory>,
    store: Arc<dyn Store>,
}

async fn answer_each(
    broker: &Client,
    calls: &mut async_nats::Subscriber,
    owner: Arc<Owner>,
    stop: &CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = calls.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let (broker, owner) = (broker.clone(), Arc::clone(&owner));
        tokio::spawn(async move { answer(&broker, &owner, message).await });
    }
    answer_moved_until_drained(broker, calls).await;
}

/// Leaving: unsubscribes, and answers `Moved` to every call that had
/// already reached this instance, so its sender asks who owns the user now
/// instead of waiting out its timeout and refusing the message
/// (`owner_unavailable`).
async fn answer_moved_until_drained(broker: &Client, calls: &mut async_nats::Subscriber) {
    if let Err(error) = calls.drain().await {
        tracing::warn!(%error, "could not unsubscribe from forwarded calls");
        return;
    }
    let drained = async {
        while let Some(message) = calls.next().await {
            let Some(reply) = message.reply else {
                continue;
            };
            let Ok(body) = serde_json::to_vec(&Answer::Moved) else {
                continue;
            };
            if let Err(error) = broker.publish(reply, body.into()).await {
                tracing::warn!(%error, "could not answer a forwarded call");
            }
        }
        let _ = broker.flush().await;
    };
    if tokio::time::timeout(DRAIN_WAIT, drained).await.is_err() {
        tracing::warn!("forwarded calls were still arriving when this instance left");
    }
}

async fn answer(broker: &Client, owner: &Owner, message: Message) {
    let Some(reply) = message.reply else {
        return;
    };
    let answer = match serde_json::from_slice::<Call>(&message.payload) {
        Ok(call) => decide(owner, call).await,
        Err(error) => {
            tracing::warn!(%error, "an unreadable forwarded call");
            Answer::Storage("unreadable call".into())
        }
    };
    let Ok(body) = serde_json::to_vec(&answer) else {
        return;
    };
    if let Err(error) = broker.publish(reply, body.into()).await {
        tracing::warn!(%error, "could not answer a forwarded call");
    }
}

async fn decide(owner: &Owner, call: Call) -> Answer {
    let factory = &owner.factory;
    match call {
        Call::Submit(request) => match factory.submit_here(&request.into()).await {
            Ok(Ok(accepted)) => stored(&owner.store, accepted).await,
            Ok(Err(_elsewhere)) => Answer::Moved,
            Err(cordon_engine::StartError::Submit(error)) => Answer::of_submit(Err(error)),
            Err(error) => Answer::Storage(error.to_string()),
        },
        Call::Cancel { user_id, run_id } => match factory.cancel_here(&user_id, &run_id).await {
            Ok(Ok(outcome)) => Answer::of_cancel(outcome),
            Ok(Err(_elsewhere)) => Answer::Moved,
            Err(error) => Answer::Storage(error.to_string()),
        },
        Call::Approval { user_id, answer } => {
            match factory.answer_here(&user_id, &answer.into()).await {
                Ok(Ok(result)) => Answer::of_approval(result),
                Ok(Err(_elsewhere)) => Answer::Moved,
                Err(error) => Answer::Storage(error.to_string()),
            }
        }
    }
}

/// Accepted only once what the run wrote so far is committed here, as REST
/// answers `202` only after its own store's sync: the caller reports success.
async fn stored(store: &Arc<dyn Store>, accepted: Accepted) -> Answer {
    let epoch = store.failure_epoch();
    match store.sync().await {
        Ok(()) if store.failure_epoch() == epoch => Answer::of_submit(Ok(accepted)),
        Ok(()) => Answer::Storage("writes failed while the message was stored".into()),
        Err(error) => Answer::Storage(error.to_string()),
    }
}
