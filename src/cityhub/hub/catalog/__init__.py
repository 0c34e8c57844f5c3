"""The data resource catalog: departments' datasets, their sharing classes, and sharing requests."""
