from branchenv.cli import main

main()
