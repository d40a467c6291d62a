//! Tests of the RocksDB storage against real data directories.

use super::*;
use nightjar_model::model::{Labels, Sample};
use nightjar_model::selector::{MatchOp, Matcher};
use std::sync::atomic::Ordering;

fn key(metric: &str, host: &str) -> SeriesKey {
    SeriesKey {
        metric: metric.into(),
        labels: Labels::from_pairs(vec![("host".into(), host.into())]).unwrap(),
    }
}

fn batch(agent: &str, host: &str, seq: u64, points: &[(&str, i64, f64)]) -> Batch {
    Batch {
        agent_id: agent.into(),
        host: host.into(),
        seq,
        interval_ms: 1_000,
        samples: points
            .iter()
            .map(|(m, t, v)| Sample {
                series: key(m, host),
                point: Point {
                    timestamp_ms: *t,
                    value: *v,
                },
            })
            .collect(),
        histograms: Vec::new(),
    }
}

/// Opens `dir` with the clock at the epoch, where these tests' points are.
/// Under the system clock every one of them is past retention, and RocksDB
/// compacts of its own accord (a lone bottommost L0 file, for one), which
/// would drop them at any moment: a test that reopens its data dir would
/// then fail now and then for a reason it does not test.
fn open_in_1970(dir: &std::path::Path) -> Result<RocksStorage, StorageError> {
    RocksStorage::open_with(dir, Retention::default(), Arc::new(|| 0))
}

fn host_selector(host: &str) -> Selector {
    Selector {
        metric: None,
        matchers: vec![Matcher {
            name: "host".into(),
            op: MatchOp::Equal(host.into()),
        }],
    }
}

/// A batch of histogram samples: (metric, timestamp, observations).
fn histogram_batch(agent: &str, host: &str, seq: u64, rows: &[(&str, i64, &[f64])]) -> Batch {
    let mut b = batch(agent, host, seq, &[]);
    b.histograms = rows
        .iter()
        .map(|(m, t, values)| {
            let mut h = Histogram::new(1e-3);
            for v in values.iter() {
                h.record(*v, 1).unwrap();
            }
            nightjar_model::model::HistogramSample {
                series: key(m, host),
                timestamp_ms: *t,
                histogram: h,
            }
        })
        .collect();
    b
}

fn counts(found: &[SeriesHistograms]) -> Vec<(String, Vec<(i64, u64)>)> {
    found
        .iter()
        .map(|(k, hs)| {
            (
                k.labels.get("host").unwrap().to_owned(),
                hs.iter().map(|(t, h)| (*t, h.count())).collect(),
            )
        })
        .collect()
}

#[test]
fn histograms_are_stored_once_in_every_tier_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let any = Selector {
        metric: Some("lat".into()),
        matchers: vec![],
    };
    {
        let s = open_in_1970(dir.path()).unwrap();
        s.append(
            &histogram_batch("ag", "a", 1, &[("lat", 10_000, &[1.0, 2.0])]),
            1,
        )
        .unwrap();
        s.append(
            &histogram_batch("ag", "a", 2, &[("lat", 20_000, &[3.0])]),
            1,
        )
        .unwrap();
        // A replayed batch changes nothing; a second histogram at a
        // stored timestamp is refused as out of order.
        let replay = s
            .append(
                &histogram_batch("ag", "a", 2, &[("lat", 20_000, &[3.0])]),
                1,
            )
            .unwrap();
        assert_eq!(replay, AppendOutcome::Replay { acked_through: 2 });
        let again = s
            .append(
                &histogram_batch("ag", "a", 3, &[("lat", 20_000, &[9.0])]),
                1,
            )
            .unwrap();
        assert_eq!(
            again,
            AppendOutcome::Stored {
                acked_through: 3,
                out_of_order: 1
            }
        );
        s.append(
            &histogram_batch("bg", "b", 1, &[("lat", 70_000, &[5.0])]),
            1,
        )
        .unwrap();
        // Plain series are not read for histograms.
        s.append(&batch("ag", "a", 4, &[("cpu", 1_000, 1.0)]), 1)
            .unwrap();
    }
    let s = open_in_1970(dir.path()).unwrap();
    let raw = s.query_histograms(&any, Tier::Raw, 0, 100_000).unwrap();
    assert_eq!(
        counts(&raw),
        [
            ("a".to_owned(), vec![(10_000, 2), (20_000, 1)]),
            ("b".to_owned(), vec![(70_000, 1)])
        ]
    );
    let minute = s.query_histograms(&any, Tier::Minute, 0, 100_000).unwrap();
    assert_eq!(
        counts(&minute),
        [
            ("a".to_owned(), vec![(0, 3)]),
            ("b".to_owned(), vec![(60_000, 1)])
        ]
    );
    let hour = s.query_histograms(&any, Tier::Hour, 0, 100_000).unwrap();
    assert_eq!(hour[0].1[0].1.count(), 3);
    assert!((hour[0].1[0].1.max() - 3.0).abs() < 0.03);
    let bounded = s.query_histograms(&any, Tier::Raw, 15_000, 20_000).unwrap();
    assert_eq!(counts(&bounded), [("a".to_owned(), vec![(20_000, 1)])]);
    assert!(
        s.query_histograms(&host_selector("a"), Tier::Raw, 0, 1)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn what_a_crash_lost_of_a_batch_s_unsynced_writes_is_rebuilt_from_its_ingest_log_record() {
    let dir = tempfile::tempdir().unwrap();
    let lat = Selector {
        metric: Some("lat".into()),
        matchers: vec![],
    };
    let minute_counts =
        |s: &RocksStorage| counts(&s.query_histograms(&lat, Tier::Minute, 0, 100_000).unwrap());
    {
        let s = open_in_1970(dir.path()).unwrap();
        s.lose_unsynced_batch_writes.store(true, Ordering::Relaxed);
        s.append(
            &histogram_batch("ag", "a", 1, &[("lat", 10_000, &[1.0, 2.0])]),
            5,
        )
        .unwrap();
        s.append(&batch("ag", "a", 2, &[("cpu", 20_000, 7.5)]), 6)
            .unwrap();
        // Dropped without flushing: a crash after both acks, which lost
        // their histogram rows, the agent's mark and the host record.
    }
    for open in ["replayed", "after the log was truncated"] {
        let s = open_in_1970(dir.path()).unwrap();
        assert_eq!(s.high_water("a", "ag"), 2, "{open}");
        assert_eq!(
            s.append(&batch("ag", "a", 2, &[("cpu", 20_000, 7.5)]), 7)
                .unwrap(),
            AppendOutcome::Replay { acked_through: 2 },
            "{open}"
        );
        let host = s.hosts().into_iter().find(|h| h.info.host == "a");
        assert_eq!(host.map(|h| h.info.last_seen_ms), Some(6), "{open}");
        assert_eq!(
            minute_counts(&s),
            [("a".to_owned(), vec![(0, 2)])],
            "the histogram, once, in its rollup: {open}"
        );
        assert_eq!(
            counts(&s.query_histograms(&lat, Tier::Raw, 0, 100_000).unwrap()),
            [("a".to_owned(), vec![(10_000, 2)])],
            "{open}"
        );
        let cpu = s
            .query_range(&host_selector("a"), i64::MIN, i64::MAX)
            .unwrap();
        assert_eq!(
            cpu.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
            vec![vec![Point {
                timestamp_ms: 20_000,
                value: 7.5
            }]],
            "{open}"
        );
        s.flush_heads(Duration::ZERO).unwrap();
        assert_eq!(s.log_records(), 0, "{open}");
    }
}

#[test]
fn a_replay_of_more_records_than_one_rebuilding_write_holds_restores_them_all() {
    // More records than `ReplayWrites::RECORDS_PER_WRITE` (1024): the
    // marks, host records and histogram rows they rebuild take several
    // writes, and none may be lost or written twice at the boundaries.
    const RECORDS: u64 = 2_100;
    let dir = tempfile::tempdir().unwrap();
    let lat = Selector {
        metric: Some("lat".into()),
        matchers: vec![],
    };
    {
        let s = open_in_1970(dir.path()).unwrap();
        s.lose_unsynced_batch_writes.store(true, Ordering::Relaxed);
        for seq in 1..=RECORDS {
            // Two senders on two hosts, interleaved; a histogram every
            // 100th record of sender "a".
            let ts = seq as i64 * 1_000;
            let b = if seq % 100 == 0 {
                histogram_batch("ag", "a", seq, &[("lat", ts, &[1.0])])
            } else {
                batch("ag", "a", seq, &[("cpu", ts, seq as f64)])
            };
            s.append(&b, seq as i64).unwrap();
            s.append(&batch("bg", "b", seq, &[("cpu", ts, 1.0)]), seq as i64)
                .unwrap();
        }
    }
    let s = open_in_1970(dir.path()).unwrap();
    assert_eq!(s.high_water("a", "ag"), RECORDS);
    assert_eq!(s.high_water("b", "bg"), RECORDS);
    let last_seen = |host: &str| {
        s.hosts()
            .into_iter()
            .find(|h| h.info.host == host)
            .map(|h| h.info.last_seen_ms)
    };
    assert_eq!(last_seen("a"), Some(RECORDS as i64));
    assert_eq!(last_seen("b"), Some(RECORDS as i64));
    let raw = counts(&s.query_histograms(&lat, Tier::Raw, 0, i64::MAX).unwrap());
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].1.len(), (RECORDS / 100) as usize);
    assert!(raw[0].1.iter().all(|&(_, n)| n == 1), "{raw:?}");
    // Each in its own minute: once each in the rollup, none twice.
    let minute = counts(&s.query_histograms(&lat, Tier::Minute, 0, i64::MAX).unwrap());
    let total: u64 = minute[0].1.iter().map(|&(_, n)| n).sum();
    assert_eq!(total, RECORDS / 100);
    // And the marks were written, not only raised in memory: they hold
    // after the log is truncated and the data dir opened again.
    s.flush_heads(Duration::ZERO).unwrap();
    assert_eq!(s.log_records(), 0);
    drop(s);
    let s = open_in_1970(dir.path()).unwrap();
    assert_eq!(s.high_water("a", "ag"), RECORDS);
    assert_eq!(s.high_water("b", "bg"), RECORDS);
}

#[test]
fn records_of_runs_with_and_without_forwarding_are_replayed_in_the_order_stored() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Without forwarding: the record goes to the segments.
        let s = open_in_1970(dir.path()).unwrap();
        s.append(&batch("ag", "a", 1, &[("m", 1_000, 1.0)]), 0)
            .unwrap();
    }
    {
        // With forwarding: the next batch's record goes to `ingest_log`;
        // neither is in a chunk yet when this run stops.
        let s = open_in_1970(dir.path()).unwrap().with_forwarding().unwrap();
        s.append(&batch("ag", "a", 2, &[("m", 2_000, 2.0)]), 0)
            .unwrap();
    }
    let s = open_in_1970(dir.path()).unwrap();
    let stored: Vec<(i64, f64)> = s
        .query_range(&host_selector("a"), i64::MIN, i64::MAX)
        .unwrap()[0]
        .1
        .iter()
        .map(|p| (p.timestamp_ms, p.value))
        .collect();
    assert_eq!(stored, vec![(1_000, 1.0), (2_000, 2.0)]);
}

#[test]
fn stores_queries_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open_in_1970(dir.path()).unwrap();
        let out = s
            .append(
                &batch("ag", "a", 1, &[("cpu", 1_000, 1.0), ("mem", 1_000, 5.0)]),
                10,
            )
            .unwrap();
        assert_eq!(
            out,
            AppendOutcome::Stored {
                acked_through: 1,
                out_of_order: 0
            }
        );
        s.append(&batch("ag", "a", 2, &[("cpu", 2_000, 2.0)]), 20)
            .unwrap();
        s.append(&batch("bg", "b", 1, &[("cpu", 1_500, 9.0)]), 30)
            .unwrap();
    }
    let s = open_in_1970(dir.path()).unwrap();
    let got = s.query_range(&host_selector("a"), 0, 5_000).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(*got[0].0, key("cpu", "a"));
    assert_eq!(
        got[0].1,
        vec![
            Point {
                timestamp_ms: 1_000,
                value: 1.0
            },
            Point {
                timestamp_ms: 2_000,
                value: 2.0
            }
        ]
    );
    let latest = s.latest(&host_selector("a")).unwrap();
    assert_eq!(
        latest[0].2,
        Point {
            timestamp_ms: 2_000,
            value: 2.0
        }
    );
    let hosts = s.hosts();
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0].info.last_seen_ms, 20);
    assert_eq!(hosts[0].series_count, 2);
    // A new series after reopen gets a fresh id, not one in use.
    s.append(&batch("ag", "a", 3, &[("disk", 3_000, 7.0)]), 40)
        .unwrap();
    assert_eq!(s.series(&host_selector("a")).len(), 3);
    assert_eq!(
        s.query_range(&host_selector("a"), 0, 5_000).unwrap()[0]
            .1
            .len(),
        2
    );
}

#[test]
fn appends_by_reference_store_what_appends_by_key_do_and_refuse_unknown_refs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open_in_1970(dir.path()).unwrap();
        s.append(&batch("ag", "a", 1, &[("cpu", 1_000, 1.0)]), 10)
            .unwrap();
        // The same key twice in one call is one series; a key already
        // stored keeps its id; new keys get consecutive ids.
        let keys = [
            key("cpu", "a"),
            key("mem", "a"),
            key("mem", "a"),
            key("disk", "a"),
        ];
        let refs = s.series_refs(&keys).unwrap();
        assert_eq!(refs[1], refs[2]);
        assert_eq!(refs[3], refs[1] + 1);
        assert_eq!(s.index.read().unwrap().id(&keys[0]), Some(refs[0]));
        let by_ref = |seq, samples: Vec<(u64, Point)>| RefBatch {
            agent_id: "ag".into(),
            host: "a".into(),
            seq,
            interval_ms: 1_000,
            samples,
        };
        let out = s
            .append_refs(
                &by_ref(
                    2,
                    vec![
                        (refs[0], Point::new(2_000, 2.0)),
                        (refs[1], Point::new(2_000, 5.0)),
                    ],
                ),
                20,
            )
            .unwrap();
        assert_eq!(
            out,
            AppendOutcome::Stored {
                acked_through: 2,
                out_of_order: 0
            }
        );
        // A replay is recognised by seq, as for appends by key.
        let again = s
            .append_refs(&by_ref(2, vec![(refs[0], Point::new(3_000, 9.0))]), 20)
            .unwrap();
        assert_eq!(again, AppendOutcome::Replay { acked_through: 2 });
        // A reference never given out fails the batch, before anything is
        // written: the mark does not move, the good sample is not stored.
        let unknown = refs[3] + 1_000;
        let err = s
            .append_refs(
                &by_ref(
                    3,
                    vec![
                        (refs[0], Point::new(4_000, 4.0)),
                        (unknown, Point::new(4_000, 1.0)),
                    ],
                ),
                30,
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("unknown series reference {unknown}")),
            "{err}"
        );
        assert_eq!(s.high_water("a", "ag"), 2);
    }
    // After reopen, as if appended by key.
    let s = open_in_1970(dir.path()).unwrap();
    let got = s.query_range(&host_selector("a"), 0, 5_000).unwrap();
    let got: Vec<(String, Vec<Point>)> = got
        .into_iter()
        .map(|(k, p)| (k.metric.clone(), p))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "cpu".into(),
                vec![Point::new(1_000, 1.0), Point::new(2_000, 2.0)]
            ),
            ("mem".into(), vec![Point::new(2_000, 5.0)]),
        ]
    );
    assert_eq!(
        s.series(&host_selector("a")).len(),
        3,
        "disk exists, without points"
    );
}

/// Every series of `host` with its points' values, by metric name.
fn values_by_series(s: &RocksStorage, host: &str) -> Vec<(String, Vec<f64>)> {
    let mut out: Vec<(String, Vec<f64>)> = s
        .query_range(&host_selector(host), 0, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, points)| (k.metric.clone(), points.iter().map(|p| p.value).collect()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn appends_through_a_stream_cache_store_what_appends_by_key_do() {
    use crate::series_cache::SeriesCache;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = RocksStorage::open(dir_a.path()).unwrap();
    let mut cache = SeriesCache::default();
    // The same series in the same order (hits), reordered, one new, one
    // gone, fewer and more than before.
    let rounds: [&[&str]; 6] = [
        &["x", "y", "z"],
        &["x", "y", "z"],
        &["z", "x", "y"],
        &["z", "w", "y"],
        &["z"],
        &["z", "w", "y", "x"],
    ];
    for (i, metrics) in rounds.iter().enumerate() {
        let points: Vec<(&str, i64, f64)> = metrics
            .iter()
            .map(|m| {
                (
                    *m,
                    1_000 * (i as i64 + 1),
                    (i * 10 + m.len()) as f64 + f64::from(m.as_bytes()[0]),
                )
            })
            .collect();
        let out = a
            .append_cached(&batch("ag", "h", i as u64 + 1, &points), 10, &mut cache)
            .unwrap();
        assert!(
            matches!(
                out,
                AppendOutcome::Stored {
                    out_of_order: 0,
                    ..
                }
            ),
            "{out:?}"
        );
    }
    let want = |metric: &str| -> Vec<f64> {
        rounds
            .iter()
            .enumerate()
            .filter(|(_, ms)| ms.contains(&metric))
            .map(|(i, _)| (i * 10 + 1) as f64 + f64::from(metric.as_bytes()[0]))
            .collect()
    };
    let got = values_by_series(&a, "h");
    let expected: Vec<(String, Vec<f64>)> = ["w", "x", "y", "z"]
        .iter()
        .map(|m| (m.to_string(), want(m)))
        .collect();
    assert_eq!(got, expected);

    // The cache holds A's ids; another storage, where those ids are other
    // series, must not take them.
    let b = RocksStorage::open(dir_b.path()).unwrap();
    b.append(
        &batch(
            "bg",
            "h",
            1,
            &[
                ("q", 1_000, 1.0),
                ("r", 1_000, 2.0),
                ("s", 1_000, 3.0),
                ("t", 1_000, 4.0),
            ],
        ),
        10,
    )
    .unwrap();
    b.append_cached(
        &batch(
            "ag",
            "h",
            1,
            &[
                ("z", 2_000, 5.0),
                ("w", 2_000, 6.0),
                ("y", 2_000, 7.0),
                ("x", 2_000, 8.0),
            ],
        ),
        10,
        &mut cache,
    )
    .unwrap();
    let got = values_by_series(&b, "h");
    let names: Vec<&str> = got.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["q", "r", "s", "t", "w", "x", "y", "z"]);
    assert!(got.iter().all(|(_, v)| v.len() == 1), "{got:?}");
    assert_eq!(got[7].1, vec![5.0]);
}

#[test]
fn replayed_batch_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_in_1970(dir.path()).unwrap();
    s.append(&batch("ag", "a", 5, &[("cpu", 1_000, 1.0)]), 0)
        .unwrap();
    let again = s
        .append(&batch("ag", "a", 5, &[("cpu", 1_000, 99.0)]), 0)
        .unwrap();
    assert_eq!(again, AppendOutcome::Replay { acked_through: 5 });
    let older = s
        .append(&batch("ag", "a", 3, &[("cpu", 500, 3.0)]), 0)
        .unwrap();
    assert_eq!(older, AppendOutcome::Replay { acked_through: 5 });
    let got = s.query_range(&host_selector("a"), 0, 5_000).unwrap();
    assert_eq!(
        got[0].1,
        vec![Point {
            timestamp_ms: 1_000,
            value: 1.0
        }]
    );
    drop(s);
    let s = open_in_1970(dir.path()).unwrap();
    let after_reopen = s.append(&batch("ag", "a", 5, &[]), 0).unwrap();
    assert_eq!(after_reopen, AppendOutcome::Replay { acked_through: 5 });
    // The mark is (host, agent id): the same id from another host is not
    // a replay of host a's batches, and does not move their mark.
    let other_host = s
        .append(&batch("ag", "b", 1 << 62, &[("cpu", 1_000, 7.0)]), 0)
        .unwrap();
    assert!(
        matches!(other_host, AppendOutcome::Stored { .. }),
        "{other_host:?}"
    );
    drop(s);
    let s = open_in_1970(dir.path()).unwrap();
    assert_eq!(s.high_water("a", "ag"), 5, "marks survive reopen, apart");
    assert_eq!(s.high_water("b", "ag"), 1 << 62);
    let next = s
        .append(&batch("ag", "a", 6, &[("cpu", 2_000, 2.0)]), 0)
        .unwrap();
    assert!(matches!(next, AppendOutcome::Stored { .. }), "{next:?}");
}

#[test]
fn range_bounds_are_inclusive_and_negative_times_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_in_1970(dir.path()).unwrap();
    let pts = [
        ("m", -5, 0.0),
        ("m", 0, 1.0),
        ("m", 10, 2.0),
        ("m", 20, 3.0),
    ];
    s.append(&batch("ag", "a", 1, &pts), 0).unwrap();
    let got = s.query_range(&host_selector("a"), 0, 10).unwrap();
    let ts: Vec<i64> = got[0].1.iter().map(|p| p.timestamp_ms).collect();
    assert_eq!(ts, vec![0, 10]);
    let all = s
        .query_range(&host_selector("a"), i64::MIN, i64::MAX)
        .unwrap();
    let ts: Vec<i64> = all[0].1.iter().map(|p| p.timestamp_ms).collect();
    assert_eq!(ts, vec![-5, 0, 10, 20]);
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// A clock the test moves by hand.
fn manual_clock(start: i64) -> (Arc<std::sync::atomic::AtomicI64>, Clock) {
    let now = Arc::new(std::sync::atomic::AtomicI64::new(start));
    let read = now.clone();
    (now, Arc::new(move || read.load(Ordering::SeqCst)))
}

/// Points (raw) and buckets (rollups) of host "a" per tier after
/// moving the clock to `now` and compacting.
fn tier_counts_at(
    s: &RocksStorage,
    clock: &std::sync::atomic::AtomicI64,
    now: i64,
) -> (usize, usize, usize) {
    clock.store(now, Ordering::SeqCst);
    s.compact();
    (
        count(s, Tier::Raw),
        count(s, Tier::Minute),
        count(s, Tier::Hour),
    )
}

fn count(s: &RocksStorage, tier: Tier) -> usize {
    let sel = host_selector("a");
    match tier {
        Tier::Raw => s
            .query_range(&sel, i64::MIN, i64::MAX)
            .unwrap()
            .iter()
            .map(|(_, p)| p.len())
            .sum(),
        t => s
            .query_summaries(&sel, t, i64::MIN / 2, i64::MAX / 2)
            .unwrap()
            .iter()
            .map(|(_, b)| b.len())
            .sum(),
    }
}

#[test]
fn each_tier_drops_data_older_than_its_retention_at_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_000 * DAY;
    let (clock, read_clock) = manual_clock(t0);
    let retention = Retention {
        raw: Duration::from_secs(15 * 86_400),
        minute: Duration::from_secs(90 * 86_400),
        hour: Duration::from_secs(730 * 86_400),
    };
    let s = RocksStorage::open_with(dir.path(), retention, read_clock).unwrap();
    // Two hours of one point a minute, then everything written out.
    let pts: Vec<(&str, i64, f64)> = (0..120).map(|i| ("m", t0 + i * 60_000, i as f64)).collect();
    s.append(&batch("ag", "a", 1, &pts), t0).unwrap();
    s.flush_heads(Duration::ZERO).unwrap();
    let all = (
        count(&s, Tier::Raw),
        count(&s, Tier::Minute),
        count(&s, Tier::Hour),
    );
    assert_eq!(all, (120, 120, 2));

    assert_eq!(tier_counts_at(&s, &clock, t0 + 14 * DAY), all);
    assert_eq!(tier_counts_at(&s, &clock, t0 + 16 * DAY), (0, 120, 2));
    assert_eq!(tier_counts_at(&s, &clock, t0 + 91 * DAY), (0, 0, 2));
    assert_eq!(tier_counts_at(&s, &clock, t0 + 731 * DAY), (0, 0, 0));
}

#[test]
fn data_dir_plateaus_under_constant_load() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_000 * DAY;
    let (clock, read_clock) = manual_clock(t0);
    let retention = Retention {
        raw: Duration::from_secs(2 * 3600),
        minute: Duration::from_secs(4 * 3600),
        hour: Duration::from_secs(8 * 3600),
    };
    let s = RocksStorage::open_with(dir.path(), retention, read_clock).unwrap();
    let metrics: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let mut seq = 0;
    let mut sizes = Vec::new();
    // 24 simulated hours of 50 series at one point per 10 s, with the
    // clock following the data and a compaction every simulated hour.
    for hour in 0..24 {
        for step in 0..360 {
            let t = t0 + hour * HOUR + step * 10_000;
            let pts: Vec<(&str, i64, f64)> = metrics
                .iter()
                .enumerate()
                .map(|(i, m)| (m.as_str(), t, ((step + i as i64) % 17) as f64))
                .collect();
            seq += 1;
            s.append(&batch("ag", "a", seq, &pts), t).unwrap();
        }
        clock.store(t0 + (hour + 1) * HOUR, Ordering::SeqCst);
        s.flush_heads(Duration::ZERO).unwrap();
        s.compact();
        sizes.push(s.stats().tier_disk_bytes.iter().sum::<u64>());
    }
    // Everything is kept for 8 h at most: from then on the size is flat
    // (within compaction noise), not growing with the hours written.
    let (at_12h, at_24h) = (sizes[11], sizes[23]);
    assert!(at_12h > 0);
    assert!(
        (at_24h as f64) < at_12h as f64 * 1.3,
        "sizes per hour: {sizes:?}"
    );
}

#[test]
fn points_not_newer_than_the_series_newest_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_in_1970(dir.path()).unwrap();
    s.append(
        &batch("ag", "a", 1, &[("m", 1_000, 1.0), ("m", 2_000, 2.0)]),
        0,
    )
    .unwrap();
    let out = s
        .append(
            &batch(
                "ag",
                "a",
                2,
                &[("m", 2_000, 9.0), ("m", 1_500, 9.0), ("m", 3_000, 3.0)],
            ),
            0,
        )
        .unwrap();
    assert_eq!(
        out,
        AppendOutcome::Stored {
            acked_through: 2,
            out_of_order: 2
        }
    );
    // Also against points already written out, and after a reopen.
    s.flush_heads(Duration::ZERO).unwrap();
    drop(s);
    let s = open_in_1970(dir.path()).unwrap();
    let out = s
        .append(&batch("ag", "a", 3, &[("m", 3_000, 7.0)]), 0)
        .unwrap();
    assert_eq!(
        out,
        AppendOutcome::Stored {
            acked_through: 3,
            out_of_order: 1
        }
    );
    let values: Vec<f64> = s.query_range(&host_selector("a"), 0, 10_000).unwrap()[0]
        .1
        .iter()
        .map(|p| p.value)
        .collect();
    assert_eq!(values, vec![1.0, 2.0, 3.0]);
}

#[test]
fn ingest_log_is_replayed_at_open_and_truncated_once_written() {
    let dir = tempfile::tempdir().unwrap();
    let pts: Vec<(&str, i64, f64)> = (0..500).map(|i| ("m", i * 1_000, i as f64)).collect();
    {
        let s = open_in_1970(dir.path()).unwrap();
        s.append(&batch("ag", "a", 1, &pts[..250]), 0).unwrap();
        s.append(&batch("ag", "a", 2, &pts[250..]), 0).unwrap();
        // Dropped without flushing: the open chunk lives only in the log.
    }
    let s = open_in_1970(dir.path()).unwrap();
    let stored = |s: &RocksStorage| -> Vec<i64> {
        s.query_range(&host_selector("a"), i64::MIN, i64::MAX)
            .unwrap()[0]
            .1
            .iter()
            .map(|p| p.timestamp_ms)
            .collect()
    };
    let expected: Vec<i64> = pts.iter().map(|p| p.1).collect();
    assert_eq!(stored(&s), expected);
    assert!(s.log_records() > 0);
    // Chunks younger than the age limit stay open (also when the limit
    // is longer than the time since boot) and keep their record: the
    // open chunk holds points 480..500, all from the second batch; the
    // first batch's points are all in written chunks.
    s.flush_heads(Duration::from_secs(100 * 365 * 86_400))
        .unwrap();
    assert_eq!(s.log_records(), 1);
    assert_eq!(stored(&s), expected);
    s.flush_heads(Duration::ZERO).unwrap();
    assert_eq!(s.log_records(), 0);
    drop(s);
    let s = open_in_1970(dir.path()).unwrap();
    assert_eq!(stored(&s), expected);
    assert_eq!(
        s.latest(&host_selector("a")).unwrap()[0].2,
        Point {
            timestamp_ms: 499_000,
            value: 499.0
        }
    );
}

#[test]
fn parallel_agents_and_readers_see_every_point_exactly_once() {
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open_in_1970(dir.path()).unwrap());
    let metrics: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let done = Arc::new(AtomicBool::new(false));
    // Readers: a series' point count never goes down while chunks are
    // sealed and written under them (a point is in the head or in a
    // written chunk, never in neither), and never exceeds what was sent.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (s, done) = (s.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen: HashMap<String, usize> = HashMap::new();
                let mut reads = 0;
                while !done.load(Ordering::SeqCst) {
                    let all = Selector {
                        metric: Some("m7".into()),
                        matchers: vec![],
                    };
                    for (key, points) in s.query_range(&all, i64::MIN, i64::MAX).unwrap() {
                        let host = key.labels.get("host").unwrap().to_owned();
                        let before = seen.insert(host.clone(), points.len()).unwrap_or(0);
                        assert!(
                            points.len() >= before,
                            "{host}: {before} then {}",
                            points.len()
                        );
                        assert!(points.len() <= 300);
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let writers: Vec<_> = (0..8)
        .map(|agent| {
            let (s, metrics) = (s.clone(), metrics.clone());
            std::thread::spawn(move || {
                let host = format!("h{agent}");
                for seq in 1..=300u64 {
                    let pts: Vec<(&str, i64, f64)> = metrics
                        .iter()
                        .map(|m| (m.as_str(), seq as i64 * 1_000, seq as f64))
                        .collect();
                    let b = batch(&format!("a{agent}"), &host, seq, &pts);
                    let out = s.append(&b, 0).unwrap();
                    assert_eq!(out.acked_through(), seq);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    for agent in 0..8 {
        let got = s
            .query_range(&host_selector(&format!("h{agent}")), i64::MIN, i64::MAX)
            .unwrap();
        assert_eq!(got.len(), 50);
        assert!(got.iter().all(|(_, p)| p.len() == 300));
    }
}

#[test]
fn a_data_dir_of_an_older_layout_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        DB::open_cf(&opts, dir.path(), ["samples"]).unwrap();
    }
    let err = open_in_1970(dir.path()).err().unwrap().to_string();
    assert!(err.contains("older Nightjar storage layout"), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn series_record_round_trips() {
    let k = SeriesKey {
        metric: "disk_used_percent".into(),
        labels: Labels::from_pairs(vec![
            ("mountpoint".into(), "/".into()),
            ("device".into(), "/dev/vda".into()),
            ("empty".into(), "".into()),
        ])
        .unwrap(),
    };
    assert_eq!(decode_series(&keys::encode_series(&k)), Some(k));
}

#[test]
fn unwritable_data_dir_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("data");
    let err = RocksStorage::open(&bad).err().unwrap().to_string();
    assert!(err.contains(&bad.display().to_string()), "{err}");
}

#[test]
fn a_failed_chunk_write_keeps_its_points_visible_and_in_the_log_until_written() {
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let values = |s: &RocksStorage| -> Vec<f64> {
        s.query_range(&host_selector("a"), i64::MIN, i64::MAX)
            .unwrap()
            .first()
            .map(|(_, points)| points.iter().map(|p| p.value).collect())
            .unwrap_or_default()
    };
    {
        let s = open_in_1970(dir.path()).unwrap();
        s.fail_chunk_writes.store(true, Ordering::Relaxed);
        // Each batch starts a new hour, sealing the chunk before it.
        for (seq, hour) in [(1, 0), (2, 1), (3, 2)] {
            let out = s
                .append(
                    &batch("ag", "a", seq, &[("m", hour * HOUR, hour as f64)]),
                    0,
                )
                .unwrap();
            assert!(
                matches!(out, AppendOutcome::Stored { .. }),
                "the batch is durable in the log"
            );
        }
        assert_eq!(
            values(&s),
            vec![0.0, 1.0, 2.0],
            "kept chunks stay queryable"
        );
        assert!(
            s.flush_heads(Duration::ZERO).is_err(),
            "the retry fails too"
        );
        assert!(s.write_health().unwrap_err().contains("wait in memory"));
        assert!(s.stats().write_failures > 0);
        assert_eq!(s.log_records(), 3, "every record of a kept chunk stays");
        // Dropped while the chunks are unwritten: a crash.
    }
    let s = open_in_1970(dir.path()).unwrap();
    assert_eq!(
        values(&s),
        vec![0.0, 1.0, 2.0],
        "replay brings every point back"
    );
    s.append(&batch("ag", "a", 4, &[("m", 3 * HOUR, 3.0)]), 0)
        .unwrap();
    s.flush_heads(Duration::ZERO).unwrap();
    assert_eq!(s.write_health(), Ok(()));
    assert_eq!(
        s.log_records(),
        0,
        "all written: the log is truncated again"
    );
    drop(s);
    let s = open_in_1970(dir.path()).unwrap();
    assert_eq!(values(&s), vec![0.0, 1.0, 2.0, 3.0]);
}

#[test]
fn chunks_kept_after_a_failure_are_written_with_the_next_write_in_order() {
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let s = open_in_1970(dir.path()).unwrap();
    s.fail_chunk_writes.store(true, Ordering::Relaxed);
    s.append(&batch("ag", "a", 1, &[("m", 0, 0.0)]), 0).unwrap();
    s.append(&batch("ag", "a", 2, &[("m", HOUR, 1.0)]), 0)
        .unwrap();
    s.fail_chunk_writes.store(false, Ordering::Relaxed);
    // Sealing hour 1 writes the kept hour-0 chunk with it.
    s.append(&batch("ag", "a", 3, &[("m", 2 * HOUR, 2.0)]), 0)
        .unwrap();
    s.flush_heads(Duration::from_secs(100 * 365 * 86_400))
        .unwrap();
    assert_eq!(s.write_health(), Ok(()));
    assert_eq!(s.log_records(), 1, "only the open chunk's record is left");
    drop(s);
    let s = open_in_1970(dir.path()).unwrap();
    let got: Vec<f64> = s
        .query_range(&host_selector("a"), i64::MIN, i64::MAX)
        .unwrap()[0]
        .1
        .iter()
        .map(|p| p.value)
        .collect();
    assert_eq!(got, vec![0.0, 1.0, 2.0]);
}

#[test]
fn a_batch_that_fails_before_its_write_leaves_nothing_pinning_the_ingest_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_in_1970(dir.path()).unwrap();
    s.fail_series_creation.store(true, Ordering::Relaxed);
    let failing = histogram_batch("ag", "a", 1, &[("lat", 1_000, &[0.5])]);
    assert!(s.append(&failing, 0).is_err());
    s.fail_series_creation.store(false, Ordering::Relaxed);
    s.append(&batch("ag", "a", 2, &[("m", 1_000, 1.0)]), 0)
        .unwrap();
    s.flush_heads(Duration::ZERO).unwrap();
    assert_eq!(
        s.log_records(),
        0,
        "a failed append must not leave its log seq in flight, pinning the floor"
    );
}

/// (metric, ts, value) of the float samples of forward batches, their
/// series resolved as a sender does.
fn forwarded(s: &RocksStorage, batches: &[crate::ForwardBatch]) -> Vec<(String, i64, f64)> {
    use crate::ForwardQueue as _;
    batches
        .iter()
        .flat_map(|b| {
            let ids: Vec<u64> = b.floats.iter().map(|f| f.0).collect();
            let keys = s.forward_series(&ids);
            b.floats
                .iter()
                .zip(keys)
                .map(|((_, t, v), k)| (k.expect("indexed").metric.clone(), *t, *v))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_forward_queue_holds_exactly_what_was_stored_and_survives_reopen() {
    use crate::ForwardQueue as _;
    let dir = tempfile::tempdir().unwrap();
    let s = open_in_1970(dir.path()).unwrap().with_forwarding().unwrap();
    s.append(
        &batch(
            "a1",
            "web-1",
            1,
            &[("load", 1_000, 1.0), ("mem", 1_000, 5.0)],
        ),
        0,
    )
    .unwrap();
    // A second agent of the host resends an old point: refused by the
    // heads, so never forwarded.
    s.append(
        &batch(
            "a2",
            "web-1",
            1,
            &[("load", 1_000, 9.0), ("load", 2_000, 2.0)],
        ),
        0,
    )
    .unwrap();
    s.append(
        &histogram_batch("a1", "web-1", 2, &[("lat", 3_000, &[1.0, 2.0, 3.0])]),
        0,
    )
    .unwrap();
    let all = s.forward_read(0, None, usize::MAX, None).unwrap();
    assert_eq!(
        forwarded(&s, &all),
        [
            ("load".to_owned(), 1_000, 1.0),
            ("mem".to_owned(), 1_000, 5.0),
            ("load".to_owned(), 2_000, 2.0)
        ]
    );
    let (id, ts, figures) = &all[2].histograms[0];
    let key = s.forward_series(&[*id, u64::MAX]);
    assert_eq!(key[1], None, "an id not indexed");
    let key = key[0].as_ref().expect("indexed");
    assert_eq!((key.metric.as_str(), *ts), ("lat", 3_000));
    assert_eq!(figures[3], 3.0, "count");
    assert!((figures[4] - 6.0).abs() < 0.01, "sum {}", figures[4]);
    assert_eq!(s.forward_size().samples, 4);
    // The bound: keeping at most 2 samples cuts before the last two records.
    assert_eq!(s.forward_cut(2), all[1].seq);
    assert_eq!(s.forward_samples_from(all[1].seq), 2);
    assert_eq!(s.forward_cut(0), s.forward_size().next);
    // Two shards split the series by id and together hold every sample.
    let halves: Vec<usize> = (0..2)
        .map(|i| {
            forwarded(
                &s,
                &s.forward_read(0, None, usize::MAX, Some((i, 2))).unwrap(),
            )
            .len()
        })
        .collect();
    assert_eq!(halves.iter().sum::<usize>(), 3);
    assert!(halves.iter().all(|n| *n > 0), "{halves:?}");

    // Reads stop at whole records once enough samples are taken.
    let first = s.forward_read(0, None, 1, None).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(forwarded(&s, &first).len(), 2);
    let cursor_end = first[0].seq + 1;
    s.set_forward_cursor("hook/0", cursor_end, cursor_end, true)
        .unwrap();
    s.forward_trim(cursor_end).unwrap();
    assert_eq!(s.forward_size().samples, 2);
    drop(s);

    let s = open_in_1970(dir.path()).unwrap().with_forwarding().unwrap();
    assert_eq!(
        s.forward_cursor("hook/0").unwrap(),
        Some((cursor_end, cursor_end))
    );
    assert_eq!(s.forward_size().samples, 2);
    let rest = s.forward_read(cursor_end, None, usize::MAX, None).unwrap();
    assert_eq!(forwarded(&s, &rest), [("load".to_owned(), 2_000, 2.0)]);
    // Trimmed empty, then reopened: new records still come after the cursor.
    s.forward_trim(u64::MAX).unwrap();
    s.set_forward_cursor("hook/0", s.forward_size().next, s.forward_size().next, true)
        .unwrap();
    let cursor = s.forward_size().next;
    s.flush_heads(Duration::ZERO).unwrap();
    drop(s);
    let s = open_in_1970(dir.path()).unwrap().with_forwarding().unwrap();
    s.append(&batch("a1", "web-1", 3, &[("load", 4_000, 4.0)]), 0)
        .unwrap();
    assert_eq!(
        forwarded(&s, &s.forward_read(cursor, None, usize::MAX, None).unwrap()),
        [("load".to_owned(), 4_000, 4.0)]
    );
}

#[test]
fn forward_cursors_are_files_that_survive_reopen_and_a_torn_one_restarts_the_queue() {
    use crate::ForwardQueue as _;
    let dir = tempfile::tempdir().unwrap();
    let s = open_in_1970(dir.path()).unwrap().with_forwarding().unwrap();
    for seq in 1..=3 {
        s.append(
            &batch("a1", "web-1", seq, &[("load", seq as i64 * 1_000, 1.0)]),
            0,
        )
        .unwrap();
    }
    let first = s.forward_size().first;
    assert_eq!(s.forward_cursor("prom/2/0").unwrap(), None);
    // A request in flight, not synced: what a SIGKILL leaves.
    s.set_forward_cursor("prom/2/0", first + 1, first + 2, false)
        .unwrap();
    s.set_forward_cursor("prom/2/1", first + 3, first + 3, false)
        .unwrap();
    s.flush_heads(Duration::ZERO).unwrap();
    drop(s);

    let files: Vec<String> = std::fs::read_dir(dir.path().join("forward-cursors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let s = open_in_1970(dir.path()).unwrap().with_forwarding().unwrap();
    assert_eq!(
        s.forward_cursor("prom/2/0").unwrap(),
        Some((first + 1, first + 2))
    );
    // New records come after every cursor's end.
    assert!(s.forward_size().next >= first + 3);
    drop(s);

    // A torn write (an OS crash mid-write): the check word fails.
    let path = dir.path().join("forward-cursors").join(
        "prom/2/0"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    );
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let s = open_in_1970(dir.path()).unwrap().with_forwarding().unwrap();
    let queue_start = s.forward_size().first;
    assert_eq!(
        s.forward_cursor("prom/2/0").unwrap(),
        Some((queue_start, queue_start))
    );
    assert_eq!(
        s.forward_cursor("prom/2/1").unwrap(),
        Some((first + 3, first + 3)),
        "the other cursor is untouched"
    );
}
