use super::files::{seg_path, segments};
use super::queue::*;
use super::*;
use bytes::Bytes;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn record(id: &str, body: &str) -> Record {
    Record {
        id: id.into(),
        enqueued_ms: now_ms(),
        method: "POST".into(),
        target: "/hook".into(),
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        client: None,
        body: Bytes::from(body.to_string()),
    }
}

fn spool(dir: &Path, max_bytes: u64) -> Arc<Spool> {
    let conf = SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes,
        max_age: Duration::from_secs(3600),
        max_attempts: 10,
    };
    Spool::open(conf, crate::metrics::Metrics::new().unwrap().spool).unwrap()
}

/// Reads the queue's records from the head, delivering each: their ids.
fn drain(spool: &Spool, queue: &Queue) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some((record, len)) = queue.head().unwrap() {
        ids.push(record.id);
        spool.delivered(queue, len).unwrap();
    }
    ids
}

/// A spool in `dir` with records "0", "1" and "2" queued for route `r`.
async fn three_queued(dir: &Path) -> (Arc<Spool>, Arc<Queue>) {
    let s = spool(dir, 1 << 30);
    for i in 0..3 {
        s.enqueue("r", &record(&i.to_string(), "body"))
            .await
            .unwrap();
    }
    let queue = s.queue("r").unwrap();
    (s, queue)
}

#[test]
fn route_names_become_distinct_safe_directories() {
    assert_eq!(dir_name("webjs-webhooks"), "webjs-webhooks");
    let (a, b) = (dir_name("a/b"), dir_name("a_b"));
    assert_ne!(a, b);
    assert!(a.starts_with("a_b-") && !a.contains('/'));
    assert!(dir_name("..").starts_with("__-"));
    assert!(dir_name("").starts_with('-'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_are_all_kept_and_come_back_in_order_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = spool(dir.path(), 1 << 30);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                s.enqueue("r", &record(&format!("{t}-{i}"), "{}"))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(s.depth("r"), 400);
    drop(s);
    let s = spool(dir.path(), 1 << 30);
    let queue = s.queue("r").unwrap();
    assert_eq!(queue.depth.load(Relaxed), 400);
    let ids = drain(&s, &queue);
    assert_eq!(ids.len(), 400);
    for t in 0..8 {
        let mine: Vec<_> = ids
            .iter()
            .filter(|id| id.starts_with(&format!("{t}-")))
            .collect();
        let expected: Vec<_> = (0..50).map(|i| format!("{t}-{i}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
    assert_eq!(s.used.load(Relaxed), 0);
}

#[tokio::test]
async fn the_cursor_survives_a_restart_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (s, queue) = three_queued(dir.path()).await;
    let (first, len) = queue.head().unwrap().unwrap();
    assert_eq!(first.id, "0");
    s.delivered(&queue, len).unwrap();
    drop((queue, s));
    let seg = seg_path(&dir.path().join("r"), 1);
    let good = fs::metadata(&seg).unwrap().len();
    let mut torn = OpenOptions::new().append(true).open(&seg).unwrap();
    torn.write_all(&record("torn", "x").frame()[..20]).unwrap();

    let s = spool(dir.path(), 1 << 30);
    let queue = s.queue("r").unwrap();
    assert_eq!(fs::metadata(&seg).unwrap().len(), good);
    assert_eq!(drain(&s, &queue), ["1", "2"]);
    // Appends go on after the cut.
    s.enqueue("r", &record("3", "body")).await.unwrap();
    assert_eq!(drain(&s, &queue), ["3"]);
}

#[tokio::test]
async fn full_segments_roll_over_and_are_deleted_once_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let used = Arc::new(AtomicU64::new(0));
    let queue = Arc::new(Queue::open("r", dir.path().join("r"), 300, used).unwrap());
    for i in 0..10 {
        let frame = record(&i.to_string(), "body").frame();
        queue.append(frame, 1).await.unwrap();
    }
    let segs = segments(&dir.path().join("r")).unwrap();
    assert!(segs.len() > 2, "{segs:?}");
    let mut ids = Vec::new();
    while let Some((record, len)) = queue.head().unwrap() {
        ids.push(record.id);
        queue.advance(len).unwrap();
    }
    assert_eq!(ids, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(
        segments(&dir.path().join("r")).unwrap(),
        [*segs.last().unwrap()]
    );
}

#[tokio::test]
async fn a_full_spool_refuses_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = spool(dir.path(), 1000);
    s.enqueue("r", &record("0", &"x".repeat(600)))
        .await
        .unwrap();
    let err = s
        .enqueue("r", &record("1", &"x".repeat(600)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    assert_eq!(s.depth("r"), 1);
}

#[tokio::test]
async fn dead_letters_are_listed_replayed_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let (s, queue) = three_queued(dir.path()).await;
    for reason in ["Laravel answered 422", "Laravel answered 410"] {
        let (record, len) = queue.head().unwrap().unwrap();
        s.bury(&queue, &record, len, reason).await.unwrap();
    }
    let summary = s.summary();
    let route = &summary["routes"][0];
    assert_eq!(
        (route["depth"].as_u64(), route["dead"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(route["dead_letters"][1]["reason"], "Laravel answered 410");
    assert_eq!(route["dead_letters"][0]["id"], "0");
    let used = s.used.load(Relaxed);

    assert_eq!(s.replay("r").await.unwrap(), 2);
    assert_eq!(s.summary()["routes"][0]["dead"], 0);
    assert_eq!(s.used.load(Relaxed), used);
    assert_eq!(drain(&s, &queue), ["2", "0", "1"]);

    let (record, len) = {
        s.enqueue("r", &record("4", "body")).await.unwrap();
        queue.head().unwrap().unwrap()
    };
    s.bury(&queue, &record, len, "gone").await.unwrap();
    assert_eq!(s.purge("r").await.unwrap(), 1);
    assert_eq!(s.used.load(Relaxed), 0);
    // Recovered as it was left.
    drop((queue, s));
    let s = spool(dir.path(), 1 << 30);
    let queue = s.queue("r").unwrap();
    assert_eq!(queue.dead_count.load(Relaxed), 0);
    assert_eq!(queue.head().unwrap(), None);
    assert!(s.replay("nope").await.is_err());
}
