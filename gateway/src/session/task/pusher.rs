//! A Pusher client's messages carried out: what `session::pusher` decided
//! each one does, on the session, the registry and the routers.

use protocol::pusher;
use tokio::time::Instant;

use super::Session;
use crate::base::message::Message;
use crate::base::transport::Transport;
use crate::session::event::EventKind;
use crate::session::lifecycle::{Action, Joining};
use crate::session::pusher::Step;
use crate::session::Host;

impl<T: Transport, H: Host> Session<T, H> {
    /// What a Pusher client's text message does.
    pub(super) fn pusher_message(&mut self, text: &[u8]) -> Action {
        let Some(client) = self.pusher.as_mut() else { return Action::None };
        let (host, id) = (self.host.clone(), self.id);
        let step = client.step(text, Instant::now(), |channel| host.registry().is_member(&id, channel));
        self.carry_out_step(step)
    }

    /// What the backend's answer to a client event (EVENT=8) does.
    pub(super) fn client_event_answered(&mut self, envelope: &[u8], status: Option<u16>, body: &[u8]) -> Action {
        let Some(client) = self.pusher.as_ref() else { return Action::None };
        let step = client.checked(envelope, status, body);
        self.carry_out_step(step)
    }

    fn carry_out_step(&mut self, step: Step) -> Action {
        let (settings, metrics) = (self.host.session_settings(), self.host.metrics());
        let reply =
            |life: &mut crate::session::lifecycle::Lifecycle, text: String| life.reply(Message::text(text), metrics);
        match step {
            Step::Nothing => Action::None,
            Step::Reply(text) => reply(&mut self.life, text),
            Step::Join { channel, pusher_channel, member } => {
                if let Some(status) = self.room_refused(channel.as_str()) {
                    let refusal = pusher::subscription_error(&pusher_channel, status, "no room for another channel");
                    return reply(&mut self.life, refusal);
                }
                // A presence channel's members come from the router.
                let answer =
                    member.is_none().then(|| Message::text(pusher::subscription_succeeded(&pusher_channel, None)));
                Action::Join(Box::new(Joining { channel, member, answer }))
            }
            Step::Leave(channel) => {
                self.host.unsubscribed(self.id, &channel);
                Action::None
            }
            Step::Relay { channel, envelope } => match self.host.relay(self.id, channel, envelope) {
                true => Action::None,
                false => reply(&mut self.life, pusher::error(None, "no router linked: the client event is lost")),
            },
            Step::Check(envelope) => self.life.queue_event(envelope, EventKind::ClientEvent, settings, metrics),
            Step::SignIn { user, answer } => {
                self.host.signed_in(self.id, &user);
                reply(&mut self.life, answer)
            }
            Step::Backend(body) => self.life.queue_event(body, EventKind::Message { binary: false }, settings, metrics),
        }
    }
}
