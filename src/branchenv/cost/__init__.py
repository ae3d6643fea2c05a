"""Cost: estimates (inventory x unit prices x hours), actuals (Cost Explorer), budget gates and
reports. The modules are imported on demand; nothing heavy is imported here."""
