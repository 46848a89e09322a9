"""The promises under stress: faults and kills, live traffic, privileges, scratch databases, a dry run that
changes nothing, trust in what is applied, private files."""
