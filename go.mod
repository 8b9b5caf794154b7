module github.com/map646/map646

go 1.26

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/gopacket/gopacket v1.3.1 // indirect
	golang.org/x/sys v0.38.0 // indirect
)
