//! Search keys across the gRPC boundary as a flat postfix program (`pb::SearchProgram`).
//!
//! A nested protobuf message is decoded recursively, and prost refuses anything nested deeper
//! than 100 levels: an IMAP SEARCH with some 50 nested ORs used to fail as an internal error.
//! The program is one repeated field, so decoding it does not recurse, and neither does
//! building it or turning it back into a tree here (both use an explicit stack). What is
//! bounded instead is the depth of the tree rebuilt on the receiving side, by
//! [`MAX_PROGRAM_DEPTH`]: the store's evaluator walks that tree recursively. The IMAP parser's
//! own search depth limit (`Limits::max_search_depth`, hard ceiling 1000) stays within it.

use crate::convert::{WireError, required};
use crate::pb;
use pb::search_key::Key;
use pb::search_op::Op;
use yubin_meta_api::{ModSeq, SearchKey};

/// Deepest search-key tree a program may describe (each NOT, OR and AND is one level).
pub const MAX_PROGRAM_DEPTH: usize = 1000;

/// The program of `key`: its keys in postfix order.
pub fn to_program(key: &SearchKey) -> pb::SearchProgram {
    /// A key still to be written, or an operation to write once its operands are.
    enum Step<'a> {
        Visit(&'a SearchKey),
        Not,
        Or,
        And(u32),
    }
    let mut ops = Vec::new();
    let mut steps = vec![Step::Visit(key)];
    while let Some(step) = steps.pop() {
        let op = match step {
            Step::Visit(SearchKey::Not(inner)) => {
                steps.push(Step::Not);
                steps.push(Step::Visit(inner));
                continue;
            }
            Step::Visit(SearchKey::Or(a, b)) => {
                steps.push(Step::Or);
                steps.push(Step::Visit(b));
                steps.push(Step::Visit(a));
                continue;
            }
            Step::Visit(SearchKey::And(keys)) => {
                steps.push(Step::And(u32::try_from(keys.len()).unwrap_or(u32::MAX)));
                steps.extend(keys.iter().rev().map(Step::Visit));
                continue;
            }
            Step::Visit(leaf) => Op::Key(leaf_to_pb(leaf)),
            Step::Not => Op::Not(pb::search_op::Unit {}),
            Step::Or => Op::Or(pb::search_op::Unit {}),
            Step::And(n) => Op::And(n),
        };
        ops.push(pb::SearchOp { op: Some(op) });
    }
    pb::SearchProgram { ops }
}

/// Rebuilds the key a program describes; a malformed program (an operation without its
/// operands, not exactly one key left, a composite key as an operand) or one deeper than
/// [`MAX_PROGRAM_DEPTH`] is an error.
pub fn from_program(program: pb::SearchProgram) -> Result<SearchKey, WireError> {
    // Each entry: a finished key and the depth of its tree.
    let mut stack: Vec<(SearchKey, usize)> = Vec::new();
    let malformed = || WireError("malformed search program".into());
    for op in program.ops {
        let (key, depth) = match required(op.op, "search op")? {
            Op::Key(k) => (leaf_from_pb(k)?, 1),
            Op::Not(_) => {
                let (k, d) = stack.pop().ok_or_else(malformed)?;
                (SearchKey::Not(Box::new(k)), d + 1)
            }
            Op::Or(_) => {
                let (b, db) = stack.pop().ok_or_else(malformed)?;
                let (a, da) = stack.pop().ok_or_else(malformed)?;
                (SearchKey::Or(Box::new(a), Box::new(b)), da.max(db) + 1)
            }
            Op::And(n) => {
                let n = usize::try_from(n).map_err(|_| malformed())?;
                if n > stack.len() {
                    return Err(malformed());
                }
                let operands = stack.split_off(stack.len() - n);
                let depth = operands.iter().map(|(_, d)| *d).max().unwrap_or(0) + 1;
                (
                    SearchKey::And(operands.into_iter().map(|(k, _)| k).collect()),
                    depth,
                )
            }
        };
        if depth > MAX_PROGRAM_DEPTH {
            return Err(WireError(format!(
                "search program nested deeper than {MAX_PROGRAM_DEPTH}"
            )));
        }
        stack.push((key, depth));
    }
    match (stack.pop(), stack.is_empty()) {
        (Some((key, _)), true) => Ok(key),
        _ => Err(malformed()),
    }
}

/// The key of a search request: its program, or for a sender that predates programs the
/// nested key (which prost has already bounded to 100 levels while decoding it).
pub fn request_key(
    program: Option<pb::SearchProgram>,
    legacy: Option<pb::SearchKey>,
) -> Result<SearchKey, WireError> {
    match (program, legacy) {
        (Some(p), _) => from_program(p),
        (None, Some(k)) => SearchKey::try_from(k),
        (None, None) => Err(WireError("missing search key".into())),
    }
}

/// A key without operands.
fn leaf_to_pb(key: &SearchKey) -> pb::SearchKey {
    let k = match key {
        SearchKey::All => Key::All(pb::search_key::All {}),
        SearchKey::Uids(set) => Key::Uids(set.into()),
        SearchKey::Flag(f) => Key::Flag(f.clone()),
        SearchKey::NoFlag(f) => Key::NoFlag(f.clone()),
        SearchKey::Before(d) => Key::Before(*d),
        SearchKey::On(d) => Key::On(*d),
        SearchKey::Since(d) => Key::Since(*d),
        SearchKey::SentBefore(d) => Key::SentBefore(*d),
        SearchKey::SentOn(d) => Key::SentOn(*d),
        SearchKey::SentSince(d) => Key::SentSince(*d),
        SearchKey::Larger(n) => Key::Larger(*n),
        SearchKey::Smaller(n) => Key::Smaller(*n),
        SearchKey::Header(name, value) => Key::Header(pb::search_key::HeaderMatch {
            name: name.clone(),
            value: value.clone(),
        }),
        SearchKey::Body(s) => Key::Body(s.clone()),
        SearchKey::Text(s) => Key::Text(s.clone()),
        SearchKey::ModSeqAtLeast(m) => Key::ModseqAtLeast(m.0),
        // Written as program operations by `to_program`, never as leaves.
        SearchKey::Not(_) | SearchKey::Or(..) | SearchKey::And(_) => {
            unreachable!("composite keys are program operations")
        }
    };
    pb::SearchKey { key: Some(k) }
}

/// A program operand: a key without operands (the composite forms are operations).
fn leaf_from_pb(key: pb::SearchKey) -> Result<SearchKey, WireError> {
    match required(key.key, "search key")? {
        Key::Not(_) | Key::Or(_) | Key::And(_) => Err(WireError(
            "a search program operand must not be composite".into(),
        )),
        k => simple_key(k),
    }
}

fn simple_key(k: Key) -> Result<SearchKey, WireError> {
    Ok(match k {
        Key::All(_) => SearchKey::All,
        Key::Uids(set) => SearchKey::Uids(set.into()),
        Key::Flag(f) => SearchKey::Flag(f),
        Key::NoFlag(f) => SearchKey::NoFlag(f),
        Key::Before(d) => SearchKey::Before(d),
        Key::On(d) => SearchKey::On(d),
        Key::Since(d) => SearchKey::Since(d),
        Key::SentBefore(d) => SearchKey::SentBefore(d),
        Key::SentOn(d) => SearchKey::SentOn(d),
        Key::SentSince(d) => SearchKey::SentSince(d),
        Key::Larger(n) => SearchKey::Larger(n),
        Key::Smaller(n) => SearchKey::Smaller(n),
        Key::Header(h) => SearchKey::Header(h.name, h.value),
        Key::Body(s) => SearchKey::Body(s),
        Key::Text(s) => SearchKey::Text(s),
        Key::ModseqAtLeast(m) => SearchKey::ModSeqAtLeast(ModSeq(m)),
        Key::Not(_) | Key::Or(_) | Key::And(_) => {
            return Err(WireError("unexpected composite search key".into()));
        }
    })
}

/// The nested form of older senders. Recursive, but over what prost has decoded: at most 100
/// levels of nesting (its recursion limit).
impl TryFrom<pb::SearchKey> for SearchKey {
    type Error = WireError;

    fn try_from(key: pb::SearchKey) -> Result<SearchKey, WireError> {
        let boxed =
            |k: Option<Box<pb::SearchKey>>, field: &str| -> Result<Box<SearchKey>, WireError> {
                Ok(Box::new(SearchKey::try_from(*required(k, field)?)?))
            };
        Ok(match required(key.key, "search key")? {
            Key::Not(inner) => SearchKey::Not(Box::new(SearchKey::try_from(*inner)?)),
            Key::Or(or) => {
                let or = *or;
                SearchKey::Or(boxed(or.left, "or.left")?, boxed(or.right, "or.right")?)
            }
            Key::And(and) => SearchKey::And(
                and.keys
                    .into_iter()
                    .map(SearchKey::try_from)
                    .collect::<Result<_, _>>()?,
            ),
            k => simple_key(k)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn b(k: SearchKey) -> Box<SearchKey> {
        Box::new(k)
    }

    fn nested_ors(depth: usize) -> SearchKey {
        let mut key = SearchKey::Flag("\\Seen".into());
        for i in 0..depth {
            key = SearchKey::Or(b(SearchKey::Text(format!("t{i}"))), b(key));
        }
        key
    }

    #[test]
    fn every_key_round_trips() {
        use yubin_meta_api::UidSet;
        let key = SearchKey::And(vec![
            SearchKey::All,
            SearchKey::Uids(UidSet::from_ranges([(1, 5), (9, u32::MAX)])),
            SearchKey::Flag("\\Seen".into()),
            SearchKey::NoFlag("$Junk".into()),
            SearchKey::Before(-3),
            SearchKey::On(19_000),
            SearchKey::Since(0),
            SearchKey::SentBefore(1),
            SearchKey::SentOn(2),
            SearchKey::SentSince(3),
            SearchKey::Larger(u64::MAX),
            SearchKey::Smaller(10),
            SearchKey::Header("Subject".into(), String::new()),
            SearchKey::Body("日本".into()),
            SearchKey::Text("x".into()),
            SearchKey::ModSeqAtLeast(ModSeq(42)),
            SearchKey::Not(b(SearchKey::Or(
                b(SearchKey::Flag("a".into())),
                b(SearchKey::Not(b(SearchKey::And(vec![])))),
            ))),
        ]);
        assert_eq!(from_program(to_program(&key)), Ok(key));
    }

    /// The nested form older front-ends send is still read.
    #[test]
    fn legacy_nested_keys_are_read() {
        let leaf = |k: Key| Some(Box::new(pb::SearchKey { key: Some(k) }));
        let or = pb::SearchKey {
            key: Some(Key::Or(Box::new(pb::search_key::SearchOr {
                left: leaf(Key::Flag("a".into())),
                right: leaf(Key::Larger(3)),
            }))),
        };
        assert_eq!(
            request_key(None, Some(or.clone())),
            Ok(SearchKey::Or(
                b(SearchKey::Flag("a".into())),
                b(SearchKey::Larger(3))
            ))
        );
        let half_or = pb::SearchKey {
            key: Some(Key::Or(Box::new(pb::search_key::SearchOr {
                left: leaf(Key::Flag("a".into())),
                right: None,
            }))),
        };
        assert!(request_key(None, Some(half_or)).is_err());
        assert!(request_key(None, Some(pb::SearchKey { key: None })).is_err());
        assert!(request_key(None, None).is_err());
    }

    #[test]
    fn programs_round_trip() {
        let key = SearchKey::And(vec![
            SearchKey::Not(b(SearchKey::Or(
                b(SearchKey::Flag("\\Seen".into())),
                b(SearchKey::And(vec![
                    SearchKey::Larger(5),
                    SearchKey::Header("To".into(), "bob".into()),
                ])),
            ))),
            SearchKey::Text("x".into()),
            SearchKey::ModSeqAtLeast(ModSeq(7)),
        ]);
        assert_eq!(from_program(to_program(&key)), Ok(key));
        let empty = SearchKey::And(vec![]);
        assert_eq!(from_program(to_program(&empty)), Ok(empty));
    }

    /// 500 nested ORs survive protobuf encoding and decoding (the nested message form stops
    /// at prost's recursion limit of 100).
    #[test]
    fn deep_programs_decode_without_recursion_limits() {
        let key = nested_ors(500);
        let bytes = to_program(&key).encode_to_vec();
        let decoded = pb::SearchProgram::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(from_program(decoded), Ok(key));
    }

    #[test]
    fn malformed_or_too_deep_programs_are_refused() {
        let leaf = || pb::SearchOp {
            op: Some(Op::Key(leaf_to_pb(&SearchKey::All))),
        };
        let op = |o: Op| pb::SearchOp { op: Some(o) };
        let unit = pb::search_op::Unit {};
        for ops in [
            vec![],
            vec![leaf(), leaf()],
            vec![op(Op::Not(unit))],
            vec![leaf(), op(Op::Or(unit))],
            vec![leaf(), op(Op::And(2))],
            vec![op(Op::And(0)), op(Op::And(0))],
            vec![pb::SearchOp { op: None }],
            vec![pb::SearchOp {
                op: Some(Op::Key(pb::SearchKey {
                    key: Some(Key::And(pb::search_key::SearchAnd { keys: vec![] })),
                })),
            }],
        ] {
            assert!(
                from_program(pb::SearchProgram { ops: ops.clone() }).is_err(),
                "{ops:?}"
            );
        }
        // A million NOTs: refused at the depth limit, without recursing on the way.
        let mut ops = vec![leaf()];
        ops.extend((0..1_000_000).map(|_| op(Op::Not(unit))));
        let e = from_program(pb::SearchProgram { ops }).unwrap_err();
        assert!(e.0.contains("deeper than"), "{e:?}");
        let ok = nested_ors(MAX_PROGRAM_DEPTH - 1);
        assert_eq!(from_program(to_program(&ok)), Ok(ok));
    }
}
