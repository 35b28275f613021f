"""Pictures and tables for people: cluster montages, rank lists, transit plots, stage summaries, report figure."""
