//! The routers' half of moving a session between gateways (the gateways'
//! half is the gateway's `resume::handover`): a resume asked of the
//! gateway that holds the session, the switch of its route between two
//! pushes, and the holder's answer passed to the asker, and only to it.

use protocol::handover::{GatewayId, Refusal, ResumeAsk};
use protocol::{encode_ids, Frame, FrameKind, SessionId};

use super::{Hub, LinkId, Resume, MAX_RESUMES};

impl Hub {
    /// A client asks gateway `from` to resume `session`: the gateway that
    /// holds it decides; with none, the session has expired.
    pub fn resume(&self, from: LinkId, session: SessionId, ask: &ResumeAsk) {
        let mut links = self.links.lock().unwrap();
        let Some(asker) = links.gateways.get(&from) else { return };
        let asker_id = asker.id;
        let holder = links.sessions.get(&session).copied().filter(|owner| *owner != from);
        // One resume of a session at a time: a second asker is refused at once.
        let busy = links.resumes.contains_key(&session) || links.resumes.len() >= MAX_RESUMES;
        let (to, kind, payload) = match holder.filter(|h| links.gateways.contains_key(h)) {
            Some(holder) if !busy => {
                links.resumes.insert(session, Resume { asker: from, holder });
                (holder, FrameKind::Resume, asker_id.address(&ask.encode()))
            }
            Some(_) => (from, FrameKind::ResumeRefused, asker_id.address(&[Refusal::Failed as u8])),
            None => (from, FrameKind::ResumeRefused, asker_id.address(&[Refusal::Expired as u8])),
        };
        self.queue(&links.gateways[&to], vec![Frame::new(kind, encode_ids(&[session]), payload)]);
    }

    /// The gateway on `from` hands `session` to gateway `to`: pushes for it
    /// go there from now on. Both hear so (MOVED) on their links, after
    /// every push sent before: the old one knows nothing more will come
    /// from this router, the new one that everything after comes to it.
    /// The new one learns the session's `channels` first, so it walks the
    /// session in every publish after its MOVED. Whether `from` held it.
    pub fn moving(&self, from: LinkId, session: SessionId, to: GatewayId, channels: &[String]) -> bool {
        let mut links = self.links.lock().unwrap();
        if links.sessions.get(&session) != Some(&from) {
            drop(links);
            self.refuse_gateway_frame(from, "MOVING for a session it does not hold", &session);
            return false;
        }
        let new_owner = links.gateways.iter().find(|(_, gw)| gw.id == to).map(|(link, _)| *link);
        if let Some(previous) = links.sessions.remove(&session) {
            if let Some(gw) = links.gateways.get_mut(&previous) {
                gw.sessions -= 1;
            }
        }
        if let Some(link) = new_owner {
            links.sessions.insert(session, link);
            links.gateways.get_mut(&link).expect("found above").sessions += 1;
            for channel in channels {
                self.queue_change(&mut links, link, FrameKind::ChAdd, channel, &[session]);
            }
        }
        let moved = Frame::new(FrameKind::Moved, encode_ids(&[session]), to.address(&[]));
        for link in [Some(from), new_owner].into_iter().flatten() {
            if let Some(gw) = links.gateways.get(&link) {
                self.queue(gw, vec![moved.clone()]);
            }
        }
        true
    }

    /// Passes the holder's answer to a resume (HANDOVER, RESUME_REFUSED)
    /// on to the gateway that asked, if `from` is the holder it was asked of.
    pub fn answer_resume(&self, from: LinkId, session: SessionId, frame: Frame) {
        let mut links = self.links.lock().unwrap();
        let asker = match links.resumes.get(&session) {
            Some(resume) if resume.holder == from => resume.asker,
            _ => return self.refuse_gateway_frame(from, "an answer to a resume it was not asked", &session),
        };
        links.resumes.remove(&session);
        match links.gateways.get(&asker) {
            Some(gw) => {
                self.queue(gw, vec![frame]);
            }
            None => tracing::warn!(%session, "hand-over for a gateway no longer linked here dropped"),
        }
    }
}
