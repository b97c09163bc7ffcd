//! Storage: the local backend's atomic writes and key checks, and S3 against a real S3-compatible server
//! (`rclone serve s3`, which checks SigV4 signatures), including a multipart upload over 20 MiB.

use bytes::Bytes;
use pressure_actions::{LocalStorage, Storage, StorageError};

use crate::util::Rclone;

async fn exercise(s: &dyn Storage) {
    assert_eq!(
        s.write("a/b/c.txt", Bytes::from_static(b"hello"))
            .await
            .unwrap(),
        5
    );
    assert!(s.exists("a/b/c.txt").await.unwrap());
    assert_eq!(&s.read("a/b/c.txt").await.unwrap()[..], b"hello");
    // Overwrite.
    s.write("a/b/c.txt", Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!(&s.read("a/b/c.txt").await.unwrap()[..], b"again");
    s.rename("a/b/c.txt", "moved/c.txt").await.unwrap();
    assert!(!s.exists("a/b/c.txt").await.unwrap());
    assert_eq!(&s.read("moved/c.txt").await.unwrap()[..], b"again");
    s.remove("moved/c.txt").await.unwrap();
    assert!(matches!(
        s.remove("moved/c.txt").await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.read("missing").await,
        Err(StorageError::NotFound { .. })
    ));
    for bad in ["../x", "/abs", "a/../../b", "a//b", ""] {
        assert!(
            matches!(
                s.write(bad, Bytes::new()).await,
                Err(StorageError::InvalidKey { .. })
            ),
            "{bad:?}"
        );
        assert!(s.exists(bad).await.is_err());
    }
    // An aborted writer leaves nothing.
    let mut w = s.open_write("aborted").await.unwrap();
    w.write(Bytes::from_static(b"partial")).await.unwrap();
    w.abort().await.unwrap();
    assert!(!s.exists("aborted").await.unwrap());
}

/// `n` MiB, every MiB different, written in 1 MiB chunks.
fn mib(i: usize) -> Bytes {
    Bytes::from(
        (0..1 << 20)
            .map(|j| ((i * 7 + j) % 253) as u8)
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test]
async fn local_storage_is_atomic_and_checks_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStorage::new(dir.path().join("root")).unwrap();
    exercise(&s).await;
    // Not visible until finish, and no temp file left after it.
    let mut w = s.open_write("big/file.bin").await.unwrap();
    for i in 0..3 {
        w.write(mib(i)).await.unwrap();
    }
    assert!(!s.exists("big/file.bin").await.unwrap());
    assert_eq!(w.finish().await.unwrap(), 3 << 20);
    let names: Vec<_> = std::fs::read_dir(dir.path().join("root/big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["file.bin"]);
    let data = s.read("big/file.bin").await.unwrap();
    assert_eq!(data.len(), 3 << 20);
    assert_eq!(&data[2 << 20..], &mib(2)[..]);
    // A dropped (unfinished) writer leaves no temp file.
    let mut w = s.open_write("big/dropped").await.unwrap();
    w.write(mib(0)).await.unwrap();
    drop(w);
    assert_eq!(
        std::fs::read_dir(dir.path().join("root/big"))
            .unwrap()
            .count(),
        1
    );
    assert!(s.location("x/y").ends_with("root/x/y"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_storage_against_rclone_with_multipart_upload() {
    let Some(server) = Rclone::start("bucket") else {
        return;
    };
    let s = server.storage("bucket", "dumps/", server.secret);
    exercise(&s).await;
    assert_eq!(s.location("k"), "s3://bucket/dumps/k");

    // 21 MiB through a streaming writer: a multipart upload of 8 MiB parts.
    let mut w = s.open_write("ns/pod/big.bin").await.unwrap();
    for i in 0..21 {
        w.write(mib(i)).await.unwrap();
    }
    assert_eq!(w.finish().await.unwrap(), 21 << 20);
    // On the server's disk, under the prefix.
    let on_disk = server.dir.path().join("bucket/dumps/ns/pod/big.bin");
    assert_eq!(std::fs::metadata(&on_disk).unwrap().len(), 21 << 20);
    // Read back, streaming, and compare.
    let mut r = s.open_read("ns/pod/big.bin").await.unwrap();
    let mut all = Vec::with_capacity(21 << 20);
    while let Some(chunk) = r.next_chunk().await.unwrap() {
        all.extend_from_slice(&chunk);
    }
    assert_eq!(all.len(), 21 << 20);
    for i in 0..21 {
        assert_eq!(&all[i << 20..(i + 1) << 20], &mib(i)[..], "MiB {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_secret_is_a_clear_error() {
    let Some(server) = Rclone::start("bucket") else {
        return;
    };
    let s = server.storage("bucket", "", "not-the-secret");
    let err = s.write("k", Bytes::from_static(b"x")).await.unwrap_err();
    let msg = err.to_string();
    eprintln!("wrong secret: {msg}");
    assert!(matches!(err, StorageError::ObjectStore { .. }), "{err:?}");
    assert!(msg.contains("storage s3: put \"k\""), "{msg}");
    assert!(
        msg.contains("403") || msg.contains("Forbidden") || msg.contains("Signature"),
        "{msg}"
    );
    assert!(!server.dir.path().join("bucket/k").exists());
}
