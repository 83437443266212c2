//! The real disk behind the seam: the same operations the simulated disk answers, on a
//! temporary directory, and the log on top of it.
#![cfg(not(madsim))]

use std::path::Path;

use bytes::Bytes;
use klamm::config::LogConfig;
use klamm::io::{write_atomically, OpenMode, RealStorage, Storage, StorageFile};
use klamm::log::{LogDirFailureChannel, UnifiedLog};
use klamm::record::{AppendOrigin, Compression, RecordBatchBuilder};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn file_operations() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = RealStorage::new(tmp.path());
    runtime().block_on(async {
        storage.create_dir_all(Path::new("a/b")).await.unwrap();
        let file = storage.open(Path::new("a/b/f"), OpenMode::CreateNew).await.unwrap();
        assert_eq!(file.append(Bytes::from_static(b"hello ")).await.unwrap(), 0);
        assert_eq!(file.append(Bytes::from_static(b"world")).await.unwrap(), 6);
        file.write_at(0, Bytes::from_static(b"J")).await.unwrap();
        file.sync_data().await.unwrap();
        assert_eq!(&file.read_at(0, 100).await.unwrap()[..], b"Jello world");
        assert_eq!(file.len().await.unwrap(), 11);
        file.truncate(5).await.unwrap();
        assert_eq!(&file.read_at(0, 100).await.unwrap()[..], b"Jello");
        assert!(storage.open(Path::new("a/b/f"), OpenMode::CreateNew).await.is_err());
        assert!(storage
            .open(Path::new("a/b/missing"), OpenMode::Existing)
            .await
            .is_err());
        storage.rename(Path::new("a/b/f"), Path::new("a/b/g")).await.unwrap();
        storage.sync_dir(Path::new("a/b")).await.unwrap();
        write_atomically(&storage, Path::new("a/b/checkpoint"), Bytes::from_static(b"1\n"))
            .await
            .unwrap();
        assert_eq!(
            storage.list(Path::new("a/b")).await.unwrap(),
            vec!["checkpoint".to_string(), "g".to_string()]
        );
        storage.remove(Path::new("a/b/g")).await.unwrap();
        assert_eq!(
            storage.list(Path::new("a/b")).await.unwrap(),
            vec!["checkpoint".to_string()]
        );
    });
}

#[test]
fn log_on_a_real_disk_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = RealStorage::new(tmp.path());
    let config = LogConfig {
        segment_bytes: 4096,
        flush_messages: 1,
        ..LogConfig::default()
    };
    runtime().block_on(async {
        let log = UnifiedLog::open(
            storage.clone(),
            Path::new("t-0"),
            config.clone(),
            LogDirFailureChannel::new(),
            0,
        )
        .await
        .unwrap();
        for i in 0..100 {
            let mut b = RecordBatchBuilder::new(Compression::Snappy);
            b.append(0, None, Some(format!("value-{i}").as_bytes()), &[]);
            log.append_as_leader(b.build(), 0, AppendOrigin::Client, 0)
                .await
                .unwrap();
        }
        assert!(log.segment_base_offsets().await.len() > 1);
        drop(log);
        let log = UnifiedLog::open(storage, Path::new("t-0"), config, LogDirFailureChannel::new(), 0)
            .await
            .unwrap();
        assert_eq!(log.log_end_offset().await, 100);
        let info = log.read(57, 1, None, true).await.unwrap();
        assert_eq!(info.batches[0].base_offset, 57);
    });
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("t-0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().any(|n| n == "00000000000000000000.log"), "{names:?}");
    assert!(names.iter().any(|n| n == "log.checkpoint"), "{names:?}");
}
