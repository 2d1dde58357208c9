"""Monthly assessment: scoring, publishing, readiness, the Excel report and charts."""
