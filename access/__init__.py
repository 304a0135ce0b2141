"""Who may do what: roles and their grants, the account store's interface, the access audit."""
