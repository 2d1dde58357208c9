"""Monthly assessment: months, rules, scoring, publishing, appeals, readiness, Excel and charts."""
