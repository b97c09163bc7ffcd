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

/// Issue 16 (4): with `link -> /elsewhere` in the root, write, open, rename, remove, read and exists
/// acted outside the root. Now no link below the root is followed.
#[tokio::test]
async fn issue_16_local_storage_cannot_be_left_through_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "outside").unwrap();
    let root = dir.path().join("root");
    let s = LocalStorage::new(&root).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root.join("filelink")).unwrap();
    s.write("inside", Bytes::from_static(b"in")).await.unwrap();
    let refused = |r: Result<(), StorageError>, what: &str| {
        let e = r.expect_err(what);
        assert!(
            matches!(e, StorageError::InvalidKey { .. }) && e.to_string().contains("symbolic link"),
            "{what}: {e}"
        );
    };
    refused(
        s.write("link/x", Bytes::from_static(b"x")).await.map(drop),
        "write",
    );
    refused(
        s.write("link/new/x", Bytes::from_static(b"x"))
            .await
            .map(drop),
        "write deeper",
    );
    refused(s.open_write("link/y").await.map(drop), "open_write");
    refused(s.read("link/secret").await.map(drop), "read");
    refused(
        s.read("filelink").await.map(drop),
        "read through a file link",
    );
    refused(s.open_read("link/secret").await.map(drop), "open_read");
    refused(s.exists("link/secret").await.map(drop), "exists");
    refused(s.remove("link/secret").await, "remove");
    refused(s.rename("inside", "link/moved").await, "rename into");
    refused(s.rename("link/secret", "stolen").await, "rename out of");
    // A link to a file is not a file of the storage.
    assert!(!s.exists("filelink").await.unwrap());
    // Removing a link removes the link itself, never its target.
    s.remove("filelink").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "outside"
    );
    let left: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["secret"], "nothing was written outside the root");
    assert_eq!(&s.read("inside").await.unwrap()[..], b"in");
}

/// Issue 16 (9): temp files of writes whose process was killed stayed forever; they are removed at
/// start, while a live writer's are kept.
#[tokio::test]
async fn issue_16_stale_temp_files_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("ns/pod")).unwrap();
    let own = format!(".heap.pb.gz.tmp.{}.3", std::process::id());
    // Beyond the kernel's largest pid: no such process.
    let dead = ".heap.pb.gz.tmp.4194305.0";
    // pid 1 is alive: a concurrent writer's temp file stays.
    let live = ".other.tmp.1.0";
    for name in [own.as_str(), dead, live, "keep.tmp"] {
        std::fs::write(root.join("ns/pod").join(name), "partial").unwrap();
    }
    LocalStorage::new(&root).unwrap();
    let mut left: Vec<_> = std::fs::read_dir(root.join("ns/pod"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [live, "keep.tmp"]);
}

/// Issue 16 (5): `storage.read` under a 64 MiB Lua cap read a 1 GiB object whole before failing; the
/// size is checked first.
#[tokio::test]
async fn issue_16_read_at_most_checks_the_size_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStorage::new(dir.path()).unwrap();
    s.write("big", mib(0)).await.unwrap();
    let e = s.read_at_most("big", 1000).await.unwrap_err();
    assert!(
        matches!(e, StorageError::TooLarge { size, max: 1000, .. } if size == 1 << 20),
        "{e}"
    );
    assert_eq!(s.read_at_most("big", 1 << 20).await.unwrap().len(), 1 << 20);
}

/// Issue 19: S3 goes through pressure-actions' own HTTP/1.1 transport; an endpoint that refuses
/// connections is retried (connect errors are retryable) and then reported as the operation and key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_19_s3_connection_refused_is_retried_then_reported() {
    // A port that was just free: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s3 = pressure_actions::S3Config {
        bucket: Some("bucket".into()),
        region: Some("us-east-1".into()),
        prefix: None,
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        path_style: true,
    };
    let builder = object_store::aws::AmazonS3Builder::new()
        .with_access_key_id("k")
        .with_secret_access_key("s");
    let s = pressure_actions::ObjectStorage::s3_from_builder(&s3, builder).unwrap();
    let err = s.write("k", Bytes::from_static(b"x")).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StorageError::ObjectStore { .. }), "{err:?}");
    assert!(msg.contains("storage s3: put \"k\""), "{msg}");
    assert!(msg.contains("after 5 retries"), "{msg}");
}
