fn main() {
    std::process::exit(vine::worker::daemon::main_of_rust_program(
        std::env::args().collect(),
    ));
}
