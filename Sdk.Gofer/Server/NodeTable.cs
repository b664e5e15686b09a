using System.Text;
using AppKernel.Gofer.Native;

namespace AppKernel.Gofer.Server;

/// <summary>
/// One file the client holds, served through an O_PATH descriptor. Directories are reopened
/// through their own descriptor ("."); other files are reopened by name from their parent
/// directory (an alias), because an O_PATH descriptor cannot be upgraded without going through
/// /proc's magic links, which the Gofer refuses to use. Aliases follow renames, links and
/// unlinks made through the Gofer.
/// </summary>
internal sealed class Node(ulong id, int fd, int root, ulong dev, ulong ino, uint type)
{
    public readonly ulong Id = id;
    public readonly int Fd = fd;
    public readonly int Root = root;
    public readonly ulong Dev = dev;
    public readonly ulong Ino = ino;
    public readonly uint Type = type;

    /// <summary>References: the client's (until it releases the id) and one per alias naming this node as parent.</summary>
    internal int References = 1;

    /// <summary>Whether the client still holds the id.</summary>
    internal bool HeldByClient = true;

    /// <summary>Names this (non-directory) node is reachable by; guarded by the table lock.</summary>
    internal readonly List<Alias> Aliases = [];

    public bool IsDirectory => Type == Host.S_IFDIR;
}

/// <summary>A name of a node: its parent directory node and the raw name bytes (as a Latin-1 string, so any byte survives).</summary>
internal readonly record struct Alias(Node Parent, string Name)
{
    public AliasKey Key => new(Parent.Dev, Parent.Ino, Name);
}

/// <summary>Identifies a directory entry independently of which node object reached the directory.</summary>
internal readonly record struct AliasKey(ulong Dev, ulong Ino, string Name);

/// <summary>
/// The nodes the client holds, by id, and the directory entries they were reached by.
/// One lock guards it all: operations under it are memory-only (descriptors are closed after).
/// </summary>
internal sealed class NodeTable
{
    private readonly object gate = new();
    private readonly Dictionary<ulong, Node> nodes = [];
    private readonly Dictionary<AliasKey, List<Node>> byName = [];
    private ulong nextId = 1;

    /// <summary>Nodes currently held (for tests and diagnostics).</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                return nodes.Count;
            }
        }
    }

    /// <summary>Encodes raw name bytes as a string that maps each byte to one char.</summary>
    public static string NameKey(ReadOnlySpan<byte> name) => Encoding.Latin1.GetString(name);

    /// <summary>Adds a node for <paramref name="fd"/>, reached as <paramref name="name"/> in <paramref name="parent"/> when given.</summary>
    public Node Add(int fd, int root, in Host.Statx stat, Node? parent, string? name)
    {
        lock (gate)
        {
            var node = new Node(nextId++, fd, root, stat.Dev, stat.Ino, stat.Mode & Host.S_IFMT);
            nodes.Add(node.Id, node);
            if (parent is not null && name is not null && !node.IsDirectory)
            {
                AddAliasLocked(node, new Alias(parent, name));
            }

            return node;
        }
    }

    /// <summary>
    /// The node with <paramref name="id"/>, or null, with a reference added to
    /// <paramref name="leases"/> so that its descriptor stays open until <see cref="ReleaseLeases"/>.
    /// </summary>
    public Node? Acquire(ulong id, List<Node> leases)
    {
        lock (gate)
        {
            if (!nodes.TryGetValue(id, out var node))
            {
                return null;
            }

            node.References++;
            leases.Add(node);
            return node;
        }
    }

    /// <summary>A snapshot of the names of <paramref name="node"/>, their parents leased like <see cref="Acquire"/>.</summary>
    public Alias[] AliasesOf(Node node, List<Node> leases)
    {
        lock (gate)
        {
            foreach (var alias in node.Aliases)
            {
                alias.Parent.References++;
                leases.Add(alias.Parent);
            }

            return [.. node.Aliases];
        }
    }

    /// <summary>Drops the references taken for one request.</summary>
    public void ReleaseLeases(List<Node> leases)
    {
        if (leases.Count == 0)
        {
            return;
        }

        var dropped = new List<Node>();
        lock (gate)
        {
            foreach (var node in leases)
            {
                DropLocked(node, dropped);
            }
        }

        leases.Clear();
        CloseAll(dropped);
    }

    /// <summary>Records that <paramref name="node"/> is now also reachable as <paramref name="name"/> in <paramref name="parent"/>.</summary>
    public void AddAlias(Node node, Node parent, string name)
    {
        if (node.IsDirectory)
        {
            return;
        }

        lock (gate)
        {
            AddAliasLocked(node, new Alias(parent, name));
        }
    }

    /// <summary>The entry <paramref name="name"/> of directory <paramref name="parent"/> is gone.</summary>
    public void Unlinked(Node parent, string name)
    {
        var dropped = new List<Node>();
        lock (gate)
        {
            var key = new AliasKey(parent.Dev, parent.Ino, name);
            if (byName.Remove(key, out var holders))
            {
                foreach (var holder in holders)
                {
                    RemoveAliasesLocked(holder, key, dropped);
                }
            }
        }

        CloseAll(dropped);
    }

    /// <summary>Moves the nodes named by the old entry to the new one (and back, for an exchange).</summary>
    public void Renamed(Node oldParent, string oldName, Node newParent, string newName, bool exchange)
    {
        var dropped = new List<Node>();
        lock (gate)
        {
            var oldKey = new AliasKey(oldParent.Dev, oldParent.Ino, oldName);
            var newKey = new AliasKey(newParent.Dev, newParent.Ino, newName);
            byName.Remove(oldKey, out var moved);
            byName.Remove(newKey, out var displaced);
            foreach (var node in moved ?? [])
            {
                RemoveAliasesLocked(node, oldKey, dropped);
            }

            foreach (var node in displaced ?? [])
            {
                RemoveAliasesLocked(node, newKey, dropped);
            }

            foreach (var node in moved ?? [])
            {
                AddAliasLocked(node, new Alias(newParent, newName));
            }

            if (exchange)
            {
                foreach (var node in displaced ?? [])
                {
                    AddAliasLocked(node, new Alias(oldParent, oldName));
                }
            }
        }

        CloseAll(dropped);
    }

    /// <summary>The client no longer holds <paramref name="id"/>.</summary>
    /// <returns>False when the id was unknown.</returns>
    public bool Release(ulong id)
    {
        var dropped = new List<Node>();
        lock (gate)
        {
            if (!nodes.TryGetValue(id, out var node) || !node.HeldByClient)
            {
                return false;
            }

            node.HeldByClient = false;
            nodes.Remove(id);
            DropLocked(node, dropped);
        }

        CloseAll(dropped);
        return true;
    }

    private void AddAliasLocked(Node node, Alias alias)
    {
        foreach (var existing in node.Aliases)
        {
            if (existing.Key == alias.Key)
            {
                return;
            }
        }

        node.Aliases.Add(alias);
        alias.Parent.References++;
        if (!byName.TryGetValue(alias.Key, out var holders))
        {
            byName[alias.Key] = holders = [];
        }

        holders.Add(node);
    }

    private void RemoveAliasesLocked(Node node, AliasKey key, List<Node> dropped)
    {
        for (int i = node.Aliases.Count - 1; i >= 0; i--)
        {
            var alias = node.Aliases[i];
            if (alias.Key == key)
            {
                node.Aliases.RemoveAt(i);
                DropLocked(alias.Parent, dropped);
            }
        }
    }

    private void DropLocked(Node node, List<Node> dropped)
    {
        if (--node.References > 0)
        {
            return;
        }

        dropped.Add(node);
        foreach (var alias in node.Aliases)
        {
            var key = alias.Key;
            if (byName.TryGetValue(key, out var holders))
            {
                holders.Remove(node);
                if (holders.Count == 0)
                {
                    byName.Remove(key);
                }
            }

            DropLocked(alias.Parent, dropped);
        }

        node.Aliases.Clear();
    }

    private static void CloseAll(List<Node> dropped)
    {
        foreach (var node in dropped)
        {
            Host.CloseQuietly(node.Fd);
        }
    }
}
