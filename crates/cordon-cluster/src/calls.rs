//! Serves the calls other instances forward to this one: each is answered by this instance's engines, or `Moved` if it does not own the user.

use std::sync::Arc;

use async_nats::Message;
use async_nats::client::Client;
use cordon_engine::ExecutionEngineFactory;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::wire::{Answer, Call};

/// Subscribes, then returns the loop that answers forwarded calls until `stop` fires.
pub async fn serve(
    broker: Client,
    subject: String,
    factory: Arc<ExecutionEngineFactory>,
    stop: CancellationToken,
) -> Result<impl std::future::Future<Output = ()>, async_nats::SubscribeError> {
    let mut calls = broker.subscribe(subject).await?;
    Ok(async move { answer_each(&broker, &mut calls, &factory, &stop).await })
}

async fn answer_each(
    broker: &Client,
    calls: &mut async_nats::Subscriber,
    factory: &Arc<ExecutionEngineFactory>,
    stop: &CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = calls.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let (broker, factory) = (broker.clone(), Arc::clone(factory));
        tokio::spawn(async move { answer(&broker, &factory, message).await });
    }
}

async fn answer(broker: &Client, factory: &ExecutionEngineFactory, message: Message) {
    let Some(reply) = message.reply else {
        return;
    };
    let answer = match serde_json::from_slice::<Call>(&message.payload) {
        Ok(call) => decide(factory, call).await,
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

async fn decide(factory: &ExecutionEngineFactory, call: Call) -> Answer {
    match call {
        Call::Submit(request) => match factory.submit_here(request.into()).await {
            Ok(Ok(accepted)) => Answer::of_submit(Ok(accepted)),
            Ok(Err(cordon_engine::StartError::Submit(error))) => Answer::of_submit(Err(error)),
            Ok(Err(error)) => Answer::Storage(error.to_string()),
            Err(_elsewhere) => Answer::Moved,
        },
        Call::Cancel { user_id, run_id } => match factory.cancel_here(&user_id, &run_id).await {
            Ok(Ok(outcome)) => Answer::of_cancel(outcome),
            Ok(Err(_elsewhere)) => Answer::Moved,
            Err(error) => Answer::Storage(error.to_string()),
        },
    }
}
