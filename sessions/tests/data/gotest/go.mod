module example.com/loopdashgo

go 1.19
