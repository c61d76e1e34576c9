//! How alike two bodies are: the tokens of the lines they share in order.
//!
//! The lines are aligned as a longest common subsequence weighted by each line's
//! token count, and the similarity is the Dice coefficient of those tokens:
//! `2 × aligned tokens / (tokens of a + tokens of b)`. A changed or inserted
//! statement costs its own tokens, whatever its position.

use crate::normalize::NormalizedLine;

/// `2 × aligned tokens / (tokens of a + tokens of b)`, within `0.0..=1.0`.
pub fn similarity(a: &[NormalizedLine], b: &[NormalizedLine]) -> f64 {
    let total = total_tokens(a) + total_tokens(b);
    if total == 0 {
        return 0.0;
    }
    2.0 * aligned_tokens(a, b) as f64 / total as f64
}

pub fn total_tokens(lines: &[NormalizedLine]) -> u64 {
    lines.iter().map(|l| u64::from(l.tokens)).sum()
}

/// Tokens of the heaviest common subsequence of lines (lines match by hash).
fn aligned_tokens(a: &[NormalizedLine], b: &[NormalizedLine]) -> u64 {
    // Equal heads and tails align as they are; trimming them first leaves the
    // table only the edited middle, usually a few lines.
    let head = common_len(a.iter(), b.iter());
    let (a, b, head_tokens) = (&a[head..], &b[head..], total_tokens(&a[..head]));
    let tail = common_len(a.iter().rev(), b.iter().rev());
    let (a, b, tail_tokens) = (
        &a[..a.len() - tail],
        &b[..b.len() - tail],
        total_tokens(&a[a.len() - tail..]),
    );
    head_tokens + tail_tokens + weighted_lcs(a, b)
}

fn common_len<'a>(
    a: impl Iterator<Item = &'a NormalizedLine>,
    b: impl Iterator<Item = &'a NormalizedLine>,
) -> usize {
    a.zip(b).take_while(|(x, y)| x == y).count()
}

/// Dynamic programming over one row: `row[j]` is the best weight for the lines
/// of `a` seen so far against `b[..j]`.
fn weighted_lcs(a: &[NormalizedLine], b: &[NormalizedLine]) -> u64 {
    let mut row = vec![0u64; b.len() + 1];
    for x in a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            let matched = if x == y {
                diagonal + u64::from(x.tokens)
            } else {
                0
            };
            row[j + 1] = matched.max(above).max(row[j]);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::similarity;
    use crate::normalize::NormalizedLine;

    /// Lines of ten tokens each, told apart by their hash.
    fn lines(hashes: &[u64]) -> Vec<NormalizedLine> {
        hashes
            .iter()
            .map(|&hash| NormalizedLine { hash, tokens: 10 })
            .collect()
    }

    #[test]
    fn equal_bodies_are_fully_similar() {
        let a = lines(&[1, 2, 3, 4]);
        assert_eq!(similarity(&a, &a), 1.0);
    }

    #[test]
    fn a_changed_line_costs_its_tokens_on_both_sides() {
        let a = lines(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let b = lines(&[1, 2, 3, 4, 99, 6, 7, 8, 9, 10]);
        assert!((similarity(&a, &b) - 0.9).abs() < 1e-12);
    }

    #[test]
    fn an_inserted_line_costs_its_tokens_once() {
        let a = lines(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let b = lines(&[1, 2, 3, 4, 5, 99, 6, 7, 8, 9, 10]);
        assert!((similarity(&a, &b) - 200.0 / 210.0).abs() < 1e-12);
    }

    #[test]
    fn the_alignment_keeps_order_and_weighs_lines_by_tokens() {
        // Swapped lines align only one of the two; the heavy line wins.
        let a = vec![
            NormalizedLine {
                hash: 1,
                tokens: 30,
            },
            NormalizedLine {
                hash: 2,
                tokens: 10,
            },
        ];
        let b = vec![a[1], a[0]];
        assert!((similarity(&a, &b) - 60.0 / 80.0).abs() < 1e-12);
    }

    #[test]
    fn unrelated_or_empty_bodies_share_nothing() {
        assert_eq!(similarity(&lines(&[1, 2, 3]), &lines(&[4, 5, 6])), 0.0);
        assert_eq!(similarity(&[], &[]), 0.0);
    }
}
