//! What other nodes send this one, on its inbox subject.

use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;

use junction_core::SharedMessage;
use junction_wire::message::{Error as ErrorMessage, Interrupt};
use junction_wire::{Dict, Message, MessageType, Serializer, SessionId, Uri};

use crate::forward::{self, Forward, kind};
use crate::node::{Node, Relayed};

/// Subscribes to the node's inbox and handles what arrives, in order.
pub(crate) async fn start(node: &Arc<Node>) -> Result<(), async_nats::SubscribeError> {
    let mut inbox = node.client.subscribe(forward::inbox_subject(&node.name)).await?;
    let node = Arc::clone(node);
    tokio::spawn(async move {
        while let Some(message) = inbox.next().await {
            node.receive(message);
        }
    });
    Ok(())
}

impl Node {
    fn receive(&self, nats: async_nats::Message) {
        let header = |name: &str| {
            nats.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned())
        };
        if header("k").as_deref() == Some(kind::PING) {
            return self.pong(nats.reply);
        }
        let (Some(kind), Some(from), Some(to)) = (header("k"), header("from"), header("to")) else {
            return tracing::warn!(subject = %nats.subject, "malformed message from another node");
        };
        tracing::debug!(%kind, %from, %to, "from another node");
        let sessions: Vec<SessionId> =
            to.split(',').filter_map(|s| s.parse().ok()).filter_map(SessionId::new).collect();
        let message = match Serializer::MsgPack.decode(&nats.payload) {
            Ok(message) => message,
            Err(error) => return tracing::warn!(%error, %from, "undecodable message from a node"),
        };
        match kind.as_str() {
            kind::EVENT => {
                // One publication's recipients are all in one realm.
                let realm = sessions.iter().find_map(|s| self.local_realm(*s));
                if let Some(realm) = realm {
                    realm.deliver_local(&sessions, Arc::new(SharedMessage::new(message)));
                }
            }
            kind::MESSAGE => {
                if let Some(&session) = sessions.first() {
                    self.deliver(&from, session, message);
                }
            }
            kind::KILL => {
                let session = sessions.first().copied();
                let realm = session.and_then(|s| self.local_realm(s));
                if let (Some(session), Some(realm), Some(goodbye)) =
                    (session, realm, forward::goodbye(message))
                {
                    realm.kill_local(session, goodbye, SystemTime::now());
                }
            }
            kind::ANSWER => {
                let callee = sessions.first().copied();
                if let Some(callee) = callee
                    && let Some(realm) = self.remote_realm(callee)
                {
                    realm.answer_remote(callee, message);
                }
            }
            other => tracing::warn!(kind = other, %from, "unknown message kind from a node"),
        }
    }

    /// A message for a local session. Invocations get a request id of this session's own
    /// sequence (remembered, so the answer and any interrupt can be matched); interrupts are
    /// translated back to it.
    fn deliver(&self, from: &str, session: SessionId, message: Message) {
        let Some(peer) = self.local_peer(session) else {
            if let Message::Invocation(invocation) = message {
                // The callee left meanwhile: the caller must not wait for its timeout.
                let answer = ErrorMessage {
                    request_type: MessageType::Invocation,
                    request: invocation.request,
                    details: Dict::new(),
                    error: Uri::from("wamp.error.canceled"),
                    payload: Default::default(),
                };
                let forward = Forward::Answer { callee: session, answer: answer.into() };
                let _ = self.forwarder(from).send(forward);
            }
            return;
        };
        match message {
            Message::Invocation(mut invocation) => {
                let back = (from.to_owned(), session, invocation.request);
                let mut state = self.state();
                // Later chunks of a progressive call invocation keep the first one's id.
                let local = match state.relayed_back.get(&back) {
                    Some(local) => *local,
                    None => {
                        let local = peer.next_request_id();
                        state.relayed_back.insert(back, local);
                        let relayed =
                            Relayed { node: from.to_owned(), request: invocation.request };
                        state.relayed.insert((session, local), relayed);
                        local
                    }
                };
                drop(state);
                invocation.request = local;
                peer.send(invocation);
            }
            Message::Interrupt(Interrupt { request, options }) => {
                let local =
                    self.state().relayed_back.get(&(from.to_owned(), session, request)).copied();
                if let Some(request) = local {
                    peer.send(Interrupt { request, options });
                }
            }
            other => peer.send(other),
        }
    }

    /// Answers another node's forwarder (see `forward::reach`).
    fn pong(&self, reply: Option<async_nats::Subject>) {
        let Some(reply) = reply else { return };
        let client = self.client.clone();
        self.runtime.spawn(async move {
            if let Err(error) = client.publish(reply, bytes::Bytes::new()).await {
                tracing::warn!(%error, "answer to another node's ping not sent");
            }
        });
    }

    fn local_peer(&self, session: SessionId) -> Option<Arc<junction_core::realm::Peer>> {
        self.local_realm(session)?.session(session)
    }
}
