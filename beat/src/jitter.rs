//! Deterministic jitter (docs/design.md §15): a fire of a schedule with `jitter` is published
//! at its fire time plus an offset in [0, jitter), derived from its fire id alone.
//!
//! The offset must be the same on every beat and every build, so a new leader that re-plans
//! from the cursor after a failover waits for the very instant the old one waited for, and
//! a fire is neither lost nor doubled by the change. std's `RandomState` is seeded per process,
//! so the hash is spelled out here: FNV-1a 64 over the id's bytes, then the murmur3 `fmix64`
//! finalizer (FNV alone barely moves its high bits when only the id's last characters differ,
//! as consecutive fire ids do). The 64-bit hash is scaled into [0, jitter) in milliseconds by
//! a multiply-high, which is never negative and never reaches `jitter`.
//!
//! Only the publish instant moves: the fire id and `fire_time` keep the nominal instant, and
//! the catch-up judges lateness from the jittered instant, so jitter never makes a fire late.

use std::time::Duration;

use chrono::{DateTime, Utc};
use drumbeat_common::config::Schedule;

use crate::publish::fire_id;

/// FNV-1a 64 of `bytes`, finished with murmur3's `fmix64`.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The offset of fire `id` under `jitter`: in [0, jitter), whole milliseconds; zero when
/// `jitter` is under a millisecond.
pub fn offset(id: &str, jitter: Duration) -> Duration {
    let span = jitter.as_millis().min(u128::from(u64::MAX));
    let ms = (u128::from(hash(id.as_bytes())) * span) >> 64;
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The offset of `schedule`'s fire at `at` (zero without jitter).
pub fn offset_of(schedule: &Schedule, at: DateTime<Utc>) -> Duration {
    match schedule.jitter {
        Some(j) if !j.is_zero() => offset(&fire_id(&schedule.name, at), j),
        _ => Duration::ZERO,
    }
}

/// When `schedule`'s fire at `at` is published: `at` plus its offset.
pub fn publish_at(schedule: &Schedule, at: DateTime<Utc>) -> DateTime<Utc> {
    let off = offset_of(schedule, at);
    chrono::Duration::from_std(off)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_in_bounds_and_spread() {
        let jitter = Duration::from_secs(30);
        let mut buckets = [0u32; 10];
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for i in 0..20_000 {
            let at = start + chrono::Duration::seconds(60 * i);
            let off = offset(&fire_id("hourly", at), jitter);
            assert!(off < jitter, "{off:?}");
            buckets[(off.as_millis() / 3_000) as usize] += 1;
        }
        // 2 000 expected per bucket; a biased hash (FNV without the finalizer) misses this.
        for b in buckets {
            assert!((1_700..2_300).contains(&b), "{buckets:?}");
        }
        assert_eq!(offset("x", Duration::from_micros(900)), Duration::ZERO);
        assert_eq!(offset("x", Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn the_offset_is_a_fixed_function_of_the_id() {
        // Pinned values: a change here changes where every deployed beat publishes, and two
        // beats of different versions would disagree during a rolling upgrade.
        let j = Duration::from_secs(30);
        let id = "sched:report:2026-12-02T10:00:00Z";
        assert_eq!(offset(id, j), offset(id, j));
        assert_eq!(offset(id, j), Duration::from_millis(PINNED_MS));
        let s = Schedule {
            jitter: Some(j),
            ..crate::testing::every("report", 60)
        };
        let at = DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(offset_of(&s, at), Duration::from_millis(PINNED_MS));
        assert_eq!(
            publish_at(&s, at),
            at + chrono::Duration::milliseconds(PINNED_MS as i64)
        );
        let plain = crate::testing::every("report", 60);
        assert_eq!(publish_at(&plain, at), at);
    }

    /// Computed independently (a Python transcription of FNV-1a 64 + fmix64): 16.686 s.
    const PINNED_MS: u64 = 16_686;
}
