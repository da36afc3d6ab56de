//! Which instance a workspace belongs to, by rule. Pure and deterministic across processes and
//! versions (no std hasher, whose output may change between Rust releases).

/// Laravel's rule: `workspace_id % N` over the ordered instance list.
pub fn modulo(workspace: u64, instances: usize) -> Option<usize> {
    (instances > 0).then(|| (workspace % instances as u64) as usize)
}

/// Rendezvous (highest random weight) hashing: each `(workspace, instance name)` pair gets a score
/// and the highest eligible one wins. Adding an instance moves only the workspaces it now wins
/// (~1/N of them); removing one moves only its own.
pub fn rendezvous<'a>(
    workspace: u64,
    names: impl Iterator<Item = (usize, &'a str)>,
) -> Option<usize> {
    names
        .map(|(index, name)| (score(workspace, name), index))
        .max()
        .map(|(_, index)| index)
}

fn score(workspace: u64, name: &str) -> u64 {
    // FNV-1a over the name, then a SplitMix64 finaliser mixed with the workspace.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    mix64(hash ^ workspace.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// SplitMix64's finaliser: a bijective 64-bit mixer (distinct inputs give distinct outputs).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulo_places_workspaces_as_laravel_does() {
        // (workspace, instances, index into the ordered list): Laravel's `ws % N`, written out.
        let table = [
            (0, 4, 0),
            (1, 4, 1),
            (2, 4, 2),
            (3, 4, 3),
            (7, 4, 3),
            (8, 4, 0),
            (4_294_967_301, 4, 1),
            (u64::MAX, 4, 3),
            (5, 1, 0),
            (5, 3, 2),
        ];
        for (ws, n, index) in table {
            assert_eq!(modulo(ws, n), Some(index), "ws {ws} n {n}");
        }
        assert_eq!(modulo(1, 4), Some(1), "workspace 1 is on the 2nd instance");
        assert_eq!(modulo(4, 4), Some(0), "workspace 4 is on the 1st instance");
        assert_eq!(modulo(4, 0), None);
    }

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("node-{i}")).collect()
    }

    fn pick(ws: u64, names: &[String]) -> usize {
        rendezvous(ws, names.iter().enumerate().map(|(i, n)| (i, n.as_str()))).unwrap()
    }

    #[test]
    fn adding_an_instance_moves_about_one_in_n_workspaces_and_only_to_it() {
        for n in 2..=7usize {
            let (before, after) = (names(n), names(n + 1));
            let total = 20_000u64;
            let moved = (0..total)
                .filter(|&ws| pick(ws, &before) != pick(ws, &after))
                .count();
            for ws in 0..total {
                let (old, new) = (pick(ws, &before), pick(ws, &after));
                assert!(
                    old == new || new == n,
                    "ws {ws} moved between old instances"
                );
            }
            let expected = total as f64 / (n + 1) as f64;
            let ratio = moved as f64 / expected;
            assert!(
                (0.85..1.15).contains(&ratio),
                "n={n}: moved {moved}, expected ~{expected}"
            );
        }
    }

    #[test]
    fn rendezvous_spreads_evenly_and_is_stable() {
        let fleet = names(4);
        let mut counts = [0usize; 4];
        for ws in 0..40_000 {
            counts[pick(ws, &fleet)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        // Pinned values: a change here would move every deployed workspace.
        assert_eq!(
            [
                pick(1, &fleet),
                pick(2, &fleet),
                pick(3, &fleet),
                pick(7, &fleet)
            ],
            PINNED
        );
    }

    const PINNED: [usize; 4] = [0, 0, 0, 1];
}
