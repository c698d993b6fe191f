//! Links libFuzzer when the targets are built without libfuzzer-sys (by
//! `cargo xtask fuzz`, `--no-default-features`): `AMIMONO_FUZZ_LIBFUZZER`
//! names the `libfuzzer.a` libfuzzer-sys's build script made apart.

fn main() {
    println!("cargo:rerun-if-env-changed=AMIMONO_FUZZ_LIBFUZZER");
    if std::env::var_os("CARGO_FEATURE_LIBFUZZER_SYS").is_some() {
        return;
    }
    let Some(lib) = std::env::var_os("AMIMONO_FUZZ_LIBFUZZER") else {
        println!(
            "cargo:warning=built without libfuzzer-sys and without AMIMONO_FUZZ_LIBFUZZER: the targets will not link (use `cargo xtask fuzz` or `cargo fuzz`)"
        );
        return;
    };
    let lib = std::path::PathBuf::from(lib);
    println!("cargo:rerun-if-changed={}", lib.display());
    if let Some(dir) = lib.parent() {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    println!("cargo:rustc-link-lib=static=fuzzer");
    println!("cargo:rustc-link-lib=stdc++");
}
