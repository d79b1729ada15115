"""The clinical wing of the command line: ``synthvu clinical train | table | sample | evaluate``."""
