//! `zio-iotests`: the golden-output test runner; all logic is in
//! the `zio_iotests` library. Usually started through `./run-iotests.sh`.

#![deny(unsafe_code)]

fn main() -> std::process::ExitCode {
    zio_iotests::cli::main()
}
