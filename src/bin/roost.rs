fn main() -> anyhow::Result<()> {
    roost_broker::cli::main()
}
