//! The fast engine against the reference: random passwords (non-ASCII,
//! empty and one-byte ones included), salts and every kind of parameter set
//! a stored hash may carry give the same tags and the same PHC strings, and a
//! string written by either verifies with the other.

use argon2::PasswordHasher as _;
use proptest::prelude::*;

use super::argon2id::{Engine, MAX_OUTPUT_LEN};
use super::fast::FastEngine;
use super::reference::ReferenceEngine;

/// Small costs, so hundreds of cases run in seconds; the shape (passes,
/// lanes, tag length, memory not a multiple of the lanes) is what varies.
fn small_params() -> impl Strategy<Value = (u32, u32, u32, usize)> {
    (
        1u32..=4,
        1u32..=3,
        prop::sample::select(vec![16usize, 32, MAX_OUTPUT_LEN]),
    )
        .prop_flat_map(|(lanes, passes, tag)| {
            (8 * lanes..=512u32, Just(passes), Just(lanes), Just(tag))
        })
}

fn password() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..=2),
        "\\PC{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..=600),
    ]
}

fn salt() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 8..=48)
}

fn reference(m: u32, t: u32, p: u32, tag: usize) -> argon2::Argon2<'static> {
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(m, t, p, Some(tag)).unwrap(),
    )
}

fn fast(m: u32, t: u32, p: u32, tag: usize) -> argon2_rust::Argon2 {
    let params = argon2_rust::Params::builder()
        .memory(argon2_rust::params::Memory::kib(u64::from(m)))
        .passes(t)
        .lanes(p)
        .tag_len(argon2_rust::params::TagLen::bytes(tag as u64))
        .build()
        .unwrap();
    argon2_rust::Argon2::new(
        argon2_rust::Algorithm::Argon2id,
        argon2_rust::Version::V0x13,
        params,
    )
}

fn wrong(password: &[u8]) -> Vec<u8> {
    let mut wrong = password.to_vec();
    wrong.push(b'!');
    wrong
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn both_give_the_same_tag_and_string_and_accept_each_others(
        (m, t, p, tag) in small_params(),
        password in password(),
        salt in salt(),
    ) {
        let mut theirs = vec![0u8; tag];
        reference(m, t, p, tag).hash_password_into(&password, &salt, &mut theirs).unwrap();
        let mut ours = vec![0u8; tag];
        fast(m, t, p, tag).hash_into(&password, &salt, &mut ours).unwrap();
        prop_assert_eq!(&ours, &theirs);

        let reference_phc = reference(m, t, p, tag)
            .hash_password_with_salt(&password, &salt)
            .unwrap()
            .to_string();
        let fast_phc = fast(m, t, p, tag).hash_password(&password, &salt).unwrap();
        prop_assert_eq!(&fast_phc, &reference_phc);

        let (fast_engine, reference_engine) = (FastEngine::new().unwrap(), ReferenceEngine::default());
        prop_assert!(fast_engine.verify(&password, &reference_phc).unwrap());
        prop_assert!(reference_engine.verify(&password, &fast_phc).unwrap());
        prop_assert!(!fast_engine.verify(&wrong(&password), &reference_phc).unwrap());
        prop_assert!(!reference_engine.verify(&wrong(&password), &fast_phc).unwrap());
    }
}

proptest! {
    // The real cost (19 MiB, two passes): fewer cases.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn the_engines_write_the_same_strings_with_the_current_parameters(
        password in password(),
        salt in prop::collection::vec(any::<u8>(), 16),
    ) {
        let (fast_engine, reference_engine) = (FastEngine::new().unwrap(), ReferenceEngine::default());
        let fast_phc = fast_engine.hash(&password, &salt).unwrap();
        let reference_phc = reference_engine.hash(&password, &salt).unwrap();
        prop_assert_eq!(&fast_phc, &reference_phc);
        prop_assert!(fast_phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        prop_assert!(fast_engine.verify(&password, &reference_phc).unwrap());
        prop_assert!(reference_engine.verify(&password, &fast_phc).unwrap());
    }
}

#[test]
fn argon2i_and_argon2d_strings_verify_on_the_fast_engine() {
    for algorithm in [argon2::Algorithm::Argon2i, argon2::Algorithm::Argon2d] {
        let phc = argon2::Argon2::new(
            algorithm,
            argon2::Version::V0x13,
            argon2::Params::new(64, 1, 1, Some(32)).unwrap(),
        )
        .hash_password_with_salt(b"a password", b"somesaltsomesalt")
        .unwrap()
        .to_string();
        let engine = FastEngine::new().unwrap();
        assert!(engine.verify(b"a password", &phc).unwrap(), "{phc}");
        assert!(!engine.verify(b"a passwore", &phc).unwrap(), "{phc}");
    }
}
