package provision

// ForkTables are the tables a fork copies, for the external tests.
var ForkTables = forkTables
