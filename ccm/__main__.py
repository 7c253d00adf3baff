from ccm.cli import main

main()
