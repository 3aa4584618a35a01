"""The staff console at /staff: accounts, FAQ search, household lookup, unanswered questions, the handoff queue."""
