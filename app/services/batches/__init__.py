"""The prefecture's lists (批次): dispatch, 复核 and the ledger."""
