"""`mops`: a thin command line over modelops.api."""
