from mmreview.cli.main import main

main()
