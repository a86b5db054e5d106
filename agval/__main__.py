from agval.cli import main

main()
