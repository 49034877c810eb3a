//! `zio-iotests`: the golden-output test runner; all logic is in
//! `zio::runner`. Usually started through `./run-iotests.sh`.

fn main() -> std::process::ExitCode {
    zio::runner::cli::main()
}
