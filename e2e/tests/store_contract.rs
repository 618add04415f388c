//! One contract for the router's store, run against each store a router
//! can have: its memory, a plain Redis and a Redis Cluster of 3 masters.
//! What a command answers must not depend on which one holds the state.

use std::time::Duration;

use e2e::{Redis, RedisCluster};
use protocol::cmd::Payload;
use protocol::{Offset, SessionId};
use router::store::history::Rule;
use router::store::presence::{Joined, Left, Page};
use router::store::{resync_reason, RedisStore, Store};

fn ids(ns: &[u64]) -> Vec<SessionId> {
    ns.iter().map(|n| SessionId::from_u64(*n)).collect()
}

fn sorted(mut ids: Vec<SessionId>) -> Vec<SessionId> {
    ids.sort();
    ids
}

fn on_redis(url: &str) -> Store {
    Store::Redis(RedisStore::new(runtime::Redis::open(url).unwrap(), "contract"))
}

async fn memberships(store: &Store) {
    let [a, b, c] = ids(&[1, 2, 3])[..] else { unreachable!() };
    assert_eq!(sorted(store.join("room", &[a, b]).await.unwrap()), [a, b], "both new");
    assert_eq!(store.join("room", &[a, c]).await.unwrap(), [c], "only the new one");
    store.join("hall", &[a]).await.unwrap();
    assert_eq!(sorted(store.members("room").await.unwrap()), [a, b, c]);
    assert_eq!(store.count("room").await.unwrap(), 3);
    assert_eq!(store.count("nowhere").await.unwrap(), 0);
    assert_eq!(store.session_channels(&a).await.unwrap(), ["hall", "room"], "sorted");
    let mut each = store.sessions_channels(&[b, a]).await.unwrap();
    each.iter_mut().for_each(|channels| channels.sort());
    assert_eq!(each, [vec!["room"], vec!["hall", "room"]], "in the order asked");
    assert_eq!(store.channel_count().await.unwrap(), 2);
    assert_eq!(store.channels_of(&[a, b]).await.unwrap(), 2);
    assert_eq!(store.channels_of(&[b, c]).await.unwrap(), 1);

    assert_eq!(store.leave("room", &[b, SessionId::from_u64(9)]).await.unwrap(), 1, "one was a member");
    assert_eq!(sorted(store.members("room").await.unwrap()), [a, c]);
    let channels = store.sessions_channels(&[a]).await.unwrap();
    store.forget(&[a], &channels).await.unwrap();
    assert_eq!(store.members("room").await.unwrap(), [c]);
    assert_eq!(store.count("hall").await.unwrap(), 0);
    assert!(store.session_channels(&a).await.unwrap().is_empty());
    assert_eq!(store.channel_count().await.unwrap(), 1, "an empty channel is gone");
}

async fn users(store: &Store) {
    let [a, b] = ids(&[11, 12])[..] else { unreachable!() };
    store.bind_user(&a, "ann").await.unwrap();
    store.bind_user(&b, "ann").await.unwrap();
    assert_eq!(sorted(store.user_sessions("ann").await.unwrap()), [a, b]);
    store.bind_user(&b, "bob").await.unwrap();
    assert_eq!(store.user_sessions("ann").await.unwrap(), [a], "binding again moves the session");
    assert_eq!(
        store.session_users(&[a, b, SessionId::from_u64(19)]).await.unwrap(),
        [Some("ann".to_owned()), Some("bob".to_owned()), None]
    );
    store.forget(&[a], &[vec![]]).await.unwrap();
    assert!(store.user_sessions("ann").await.unwrap().is_empty());
    assert_eq!(store.user_sessions("bob").await.unwrap(), [b]);
}

async fn leases(store: &Store) {
    let [a, b, c, d] = ids(&[21, 22, 23, 24])[..] else { unreachable!() };
    store.gateway_sessions("1:1", &[a, b, c], true).await.unwrap();
    store.gateway_sessions("1:1", &[c], false).await.unwrap();
    store.gateway_sessions("2:2", &[d], true).await.unwrap();
    let lease = Duration::from_millis(600);
    store.renew_leases(&["1:1".into(), "2:2".into()], lease).await.unwrap();
    assert_eq!(store.reap_dead_gateway().await.unwrap(), None, "within the lease");
    tokio::time::sleep(Duration::from_millis(400)).await;
    store.renew_leases(&["2:2".into()], lease).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (gateway, ids) = store.reap_dead_gateway().await.unwrap().expect("1:1's lease ran out");
    assert_eq!((gateway.as_str(), sorted(ids)), ("1:1", vec![a, b]));
    assert_eq!(store.reap_dead_gateway().await.unwrap(), None, "reaped once; 2:2 was renewed");
}

async fn presence(store: &Store) {
    let [a, b] = ids(&[31, 32])[..] else { unreachable!() };
    let (ann, bob) = (r#"{"user":"ann"}"#.to_owned(), r#"{"user":"bob"}"#.to_owned());
    let channel = "presence-room";
    let joined = store.presence_join(channel, &[(a, ann.clone())]).await.unwrap();
    assert_eq!(joined, Joined { added: vec![a], occupied: true });
    let joined = store.presence_join(channel, &[(a, ann.clone()), (b, bob.clone())]).await.unwrap();
    assert_eq!(joined, Joined { added: vec![b], occupied: false });
    let page = store.presence_page(channel, None, 1).await.unwrap();
    assert_eq!(page, Page { count: 2, members: vec![(a, ann.clone(), true)] });
    let page = store.presence_page(channel, Some(a), 10).await.unwrap();
    assert_eq!(page, Page { count: 2, members: vec![(b, bob.clone(), true)] });

    let pair = (channel.to_owned(), b);
    let away = store.presence_set_away(std::slice::from_ref(&pair), true).await.unwrap();
    assert_eq!(away, [(channel.to_owned(), b, bob.clone())]);
    assert!(store.presence_set_away(std::slice::from_ref(&pair), true).await.unwrap().is_empty(), "away already");
    assert_eq!(store.presence_page(channel, Some(a), 10).await.unwrap().members, [(b, bob.clone(), false)]);
    assert_eq!(store.presence_set_away(&[pair], false).await.unwrap().len(), 1, "back");

    let left = store.presence_leave(channel, &[a]).await.unwrap();
    assert_eq!(left, Left { removed: vec![(a, ann)], vacated: false });
    let left = store.presence_leave(channel, &[a, b]).await.unwrap();
    assert_eq!(left, Left { removed: vec![(b, bob)], vacated: true });
    assert_eq!(store.presence_page(channel, None, 10).await.unwrap(), Page::default());

    // A Pusher channel's users, by their connections: the first and the last show.
    let users = |deltas: &[(&str, i64)]| deltas.iter().map(|(u, d)| (u.to_string(), *d)).collect::<Vec<_>>();
    let counts = store.presence_count_users(channel, &users(&[("ann", 1), ("bob", 1), ("ann", 1)])).await.unwrap();
    assert_eq!(counts, [1, 1, 2]);
    let counts = store.presence_count_users(channel, &users(&[("ann", -1), ("bob", -1), ("ann", -1)])).await.unwrap();
    assert_eq!(counts, [1, 0, 0]);
    assert_eq!(store.presence_count_users(channel, &users(&[("bob", 1)])).await.unwrap(), [1], "forgotten at 0");
}

async fn history(store: &Store) {
    let rule =
        Rule { count: 3, ttl: Duration::from_secs(60), max_bytes: 1 << 20, total_bytes: 32 << 20, envelope: false };
    let mut offsets = Vec::new();
    for n in 0..5 {
        let appended = store.history_append("news", &Payload::text(format!("m{n}")), rule).await.unwrap();
        assert_eq!(appended.trimmed, usize::from(n >= 3), "append {n}: {appended:?}");
        offsets.push(appended.offset);
    }
    let parsed: Vec<Offset> = offsets.iter().map(|offset| Offset::parse(offset).expect(offset)).collect();
    assert!(parsed.windows(2).all(|pair| pair[0] < pair[1]), "offsets grow: {offsets:?}");

    let texts = |kept: &[(String, Payload)]| -> Vec<String> {
        kept.iter().map(|(_, payload)| String::from_utf8(payload.data.to_vec()).unwrap()).collect()
    };
    let (kept, recovered) = store.history("news", None, 10).await.unwrap();
    assert_eq!((texts(&kept), recovered), (vec!["m2".to_owned(), "m3".into(), "m4".into()], None));
    assert_eq!(kept.iter().map(|(offset, _)| offset).collect::<Vec<_>>(), offsets[2..].iter().collect::<Vec<_>>());
    let (kept, _) = store.history("news", None, 2).await.unwrap();
    assert_eq!(texts(&kept), ["m3", "m4"], "the newest, oldest first");

    let (kept, recovered) = store.history("news", Some(&offsets[2]), 10).await.unwrap();
    assert_eq!((texts(&kept), recovered), (vec!["m3".to_owned(), "m4".into()], Some(true)));
    let (kept, recovered) = store.history("news", Some(&offsets[0]), 10).await.unwrap();
    assert_eq!((texts(&kept), recovered), (vec!["m2".to_owned(), "m3".into(), "m4".into()], Some(false)), "trimmed");
    let (kept, recovered) = store.history("quiet", None, 10).await.unwrap();
    assert!(kept.is_empty() && recovered.is_none());
    assert!(store.history_sweep().await.unwrap() > 0, "what the kept channels cost");
}

/// Every part of the contract, between two looks: nothing it did looks
/// like a store that lost what it confirmed.
async fn contract(store: Store) {
    store.look().await.unwrap();
    memberships(&store).await;
    users(&store).await;
    leases(&store).await;
    presence(&store).await;
    history(&store).await;
    assert_eq!(resync_reason(store.look().await.unwrap(), false), None);
    let routers = store.routers("r1", "{}").await.unwrap();
    assert!(routers.contains(&("r1".to_owned(), "{}".to_owned())), "{routers:?}");
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    contract(Store::Memory(Box::default())).await;
}

#[tokio::test]
async fn a_redis_store_keeps_the_contract() {
    let redis = Redis::start();
    contract(on_redis(&redis.url())).await;
}

#[tokio::test]
async fn a_redis_cluster_store_keeps_the_contract() {
    let cluster = RedisCluster::start();
    contract(on_redis(&cluster.url())).await;
}
