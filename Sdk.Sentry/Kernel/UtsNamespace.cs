namespace AppKernel.Sentry.Kernel;

/// <summary>
/// A UTS namespace: the host and domain names uname reports. The sandbox starts with one; a
/// privileged task gets its own copy with unshare(CLONE_NEWUTS) or clone(CLONE_NEWUTS).
/// </summary>
internal sealed class UtsNamespace(string hostname, string domainName)
{
    /// <summary>uname's nodename; sethostname changes it.</summary>
    public string Hostname { get; set; } = hostname;

    /// <summary>uname's domainname, "(none)" until setdomainname.</summary>
    public string DomainName { get; set; } = domainName;

    public UtsNamespace Copy() => new(Hostname, DomainName);
}
