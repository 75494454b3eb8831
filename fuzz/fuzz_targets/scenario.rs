#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cachegate::fuzz_entry::scenario(data));
