//! The outbox against a real loopback socket: direct writes while the socket takes them, the
//! queue once it does not, in order, bounded.

use super::*;
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// A connected pair: the server's side (whose descriptor the outbox writes to) and the client's.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (accepted, client) = tokio::join!(listener.accept(), client);
    (accepted.unwrap().0, client.unwrap())
}

fn frame(n: usize) -> Frame {
    Frame::text(&format!("{n:08}"))
}

#[tokio::test]
async fn frames_go_straight_to_a_socket_that_takes_them() {
    let (server, mut client) = pair().await;
    let outbox = Outbox::new(Some(server.as_raw_fd()));
    for n in 0..3 {
        assert_eq!(outbox.offer(&frame(n), None), Offered::Written);
    }
    assert!(!outbox.has_queue());
    let mut got = vec![0; 3 * frame(0).wire().len()];
    client.read_exact(&mut got).await.unwrap();
    let want: Vec<u8> = (0..3).flat_map(|n| frame(n).wire().to_vec()).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn what_the_kernel_does_not_take_is_queued_and_leaves_in_order() {
    let (mut server, mut client) = pair().await;
    let outbox = Outbox::new(Some(server.as_raw_fd()));
    // Offer until the socket stops taking frames (nobody reads yet), then some more.
    let mut offered = 0;
    while outbox.offer(&frame(offered), Some(Instant::now())) == Offered::Written {
        offered += 1;
        assert!(offered < 10_000_000, "the socket never filled");
    }
    offered += 1;
    for _ in 0..10 {
        assert_eq!(
            outbox.offer(&frame(offered), Some(Instant::now())),
            Offered::Queued
        );
        offered += 1;
    }
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        let size = frame(0).wire().len() * offered;
        while all.len() < size {
            let mut chunk = vec![0; 64 * 1024];
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the stream ended early");
            all.extend_from_slice(&chunk[..n]);
        }
        all
    });
    let mut delivered = 0;
    outbox
        .flush(&mut server, Duration::from_secs(10), &mut |_| {
            delivered += 1
        })
        .await
        .unwrap();
    assert_eq!(
        delivered, 11,
        "the queued events, the partly written one included"
    );
    let want: Vec<u8> = (0..offered)
        .flat_map(|n| frame(n).wire().to_vec())
        .collect();
    assert!(
        reader.await.unwrap() == want,
        "every frame, whole and in order"
    );
    assert_eq!(
        outbox.offer(&frame(0), None),
        Offered::Written,
        "direct again"
    );
}

#[tokio::test]
async fn the_queue_is_bounded_and_a_detached_outbox_takes_nothing() {
    let outbox = Outbox::new(None); // a TLS connection: everything queues
    for n in 0..SEND_QUEUE {
        assert_eq!(outbox.offer(&frame(n), None), Offered::Queued);
    }
    assert_eq!(outbox.offer(&frame(0), None), Offered::Full);
    let closer = Arc::new(Closer::default());
    let dropped = IntCounter::new("dropped", "dropped").unwrap();
    let conn = Conn {
        id: 1,
        socket_id: "1.1".into(),
        outbox: Arc::new(outbox),
        closer: closer.clone(),
    };
    assert_eq!(conn.offer(&frame(0), None, &dropped), Offered::Full);
    assert_eq!((closer.code(), dropped.get()), (4100, 1), "a slow consumer");
    conn.outbox.detach();
    assert_eq!(conn.outbox.offer(&frame(0), None), Offered::Gone);
}

#[tokio::test]
async fn nothing_is_offered_after_the_close_frame() {
    let (mut server, mut client) = pair().await;
    let outbox = Outbox::new(Some(server.as_raw_fd()));
    outbox.finish(&Frame::close(4200, "bye"));
    assert_eq!(outbox.offer(&frame(1), None), Offered::Gone);
    outbox
        .flush(&mut server, Duration::from_secs(10), &mut |_| {})
        .await
        .unwrap();
    drop(server);
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, Frame::close(4200, "bye").wire().to_vec());
}
