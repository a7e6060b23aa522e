"""Reconciliation of the books with the payment gateway: the money rules the auditor and the
scheduled ReconcilePayments share, and what they read (MySQL's books, the gateway's ledger)."""
