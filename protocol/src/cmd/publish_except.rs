use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Deserializer};

use super::{Channel, CommandError, Payload, Wire};
use crate::{encode_ids, Frame, FrameKind, SessionId, MAX_IDS_PER_FRAME};

/// PUBLISH_EXCEPT (106): a payload to a channel's members but some (the
/// sender, say). Session area: the excepted ids; data: `u16` channel name
/// length, the name, then the payload. The router passes the frame on to
/// each gateway that holds members, so `except` fits one session area.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublishExcept {
    pub channel: Channel,
    #[serde(deserialize_with = "one_session_area")]
    pub except: Vec<SessionId>,
    #[serde(flatten)]
    pub payload: Payload,
}

impl Wire for PublishExcept {
    const NAME: &'static str = "publish_except";
    const KIND: FrameKind = FrameKind::PublishExcept;

    fn from_frame(frame: Frame) -> Result<PublishExcept, CommandError> {
        let mut data = frame.data.clone();
        if data.len() < 2 {
            return Err(CommandError::Channel);
        }
        let len = data.get_u16() as usize;
        if data.len() < len {
            return Err(CommandError::Channel);
        }
        let channel = Channel::from_bytes(&data.split_to(len))?;
        Ok(PublishExcept {
            channel,
            except: frame.session_ids()?.collect(),
            payload: Payload { data, binary: frame.binary },
        })
    }

    fn to_frames(&self) -> Vec<Frame> {
        vec![self.to_frame()]
    }

    fn payload(&self) -> Option<&Payload> {
        Some(&self.payload)
    }
}

impl PublishExcept {
    pub fn to_frame(&self) -> Frame {
        let name = self.channel.as_str().as_bytes();
        let mut data = BytesMut::with_capacity(2 + name.len() + self.payload.data.len());
        data.put_u16(name.len() as u16);
        data.extend_from_slice(name);
        data.extend_from_slice(&self.payload.data);
        Frame {
            binary: self.payload.binary,
            ..Frame::new(FrameKind::PublishExcept, encode_ids(&self.except), data.freeze())
        }
    }
}

fn one_session_area<'de, D: Deserializer<'de>>(input: D) -> Result<Vec<SessionId>, D::Error> {
    let ids = Vec::<SessionId>::deserialize(input)?;
    if ids.len() > MAX_IDS_PER_FRAME {
        return Err(serde::de::Error::custom(format!("except names at most {MAX_IDS_PER_FRAME} sessions")));
    }
    Ok(ids)
}

/// A publish to a channel's members but `except`: CH_PUB when it leaves
/// none out, else PUBLISH_EXCEPT.
pub fn publish_frame(channel: Channel, except: &[SessionId], payload: Payload) -> Frame {
    match except {
        [] => super::Publish { channel, payload }.to_frame(),
        _ => PublishExcept { channel, except: except.to_vec(), payload }.to_frame(),
    }
}
