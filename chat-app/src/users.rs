//! Who is logged in: session id to name, in process or in Redis (so that
//! several app processes behave as one).

use std::collections::HashMap;
use std::sync::Mutex;

use protocol::SessionId;
use redis::AsyncCommands;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub id: SessionId,
}

pub enum Users {
    Memory(Mutex<HashMap<SessionId, String>>),
    Redis { conn: runtime::Redis, key: String },
}

pub type UsersResult<T> = Result<T, redis::RedisError>;

impl Users {
    pub async fn set(&self, id: SessionId, name: &str) -> UsersResult<()> {
        match self {
            Users::Memory(map) => {
                map.lock().unwrap().insert(id, name.to_owned());
                Ok(())
            }
            Users::Redis { conn, key } => conn.clone().hset(key, id.as_str(), name).await,
        }
    }

    pub async fn get(&self, id: SessionId) -> UsersResult<Option<String>> {
        match self {
            Users::Memory(map) => Ok(map.lock().unwrap().get(&id).cloned()),
            Users::Redis { conn, key } => conn.clone().hget(key, id.as_str()).await,
        }
    }

    /// Forgets the session; returns the name it had.
    pub async fn remove(&self, id: SessionId) -> UsersResult<Option<String>> {
        match self {
            Users::Memory(map) => Ok(map.lock().unwrap().remove(&id)),
            Users::Redis { conn, key } => {
                let (name, _): (Option<String>, u32) = redis::pipe()
                    .atomic()
                    .hget(key, id.as_str())
                    .hdel(key, id.as_str())
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(name)
            }
        }
    }

    /// Everyone online, by name then id.
    pub async fn list(&self) -> UsersResult<Vec<User>> {
        let raw: Vec<(String, String)> = match self {
            Users::Memory(map) => map.lock().unwrap().iter().map(|(id, name)| (id.to_string(), name.clone())).collect(),
            Users::Redis { conn, key } => conn.clone().hgetall(key).await?,
        };
        let mut users: Vec<User> =
            raw.into_iter().filter_map(|(id, name)| Some(User { id: id.parse().ok()?, name })).collect();
        users.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        Ok(users)
    }
}
