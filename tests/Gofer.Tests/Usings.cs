global using AppKernel.Gofer.Native;
