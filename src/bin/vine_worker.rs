fn main() {
    std::process::exit(vine::worker::daemon::main_with_args(
        std::env::args().collect(),
    ));
}
