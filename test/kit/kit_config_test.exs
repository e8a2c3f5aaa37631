defmodule ObjectStoreX.KitConfigTest do
  # Which store ObjectStoreX.Test gives a test, from options, tags, the environment and the
  # application configuration. Not async: it sets an environment variable and the application
  # environment.
  use ExUnit.Case, async: false

  import ObjectStoreX.TestHelpers
  alias ObjectStoreX.{Error, Store, TestBackends}

  @env "OBJECTSTOREX_TEST_STORE"

  setup do
    dir = TestBackends.tmp_dir!("kitcfg")

    on_exit(fn ->
      System.delete_env(@env)
      Application.delete_env(:objectstorex, :test_store)
      Application.delete_env(:objectstorex, :test_store_options)
      File.rm_rf(dir)
    end)

    {:ok, dir: dir}
  end

  defp ctx(extra \\ %{}),
    do: Map.merge(%{module: __MODULE__, test: :"test some thing"}, extra)

  test "by default, a memory store" do
    assert %{store: %Store{backend: :memory, prefix: nil}} =
             ObjectStoreX.Test.isolated_store(ctx())
  end

  test "the environment variable names a store URL; each test gets a prefix of its own", %{
    dir: dir
  } do
    System.put_env(@env, "file://#{dir}/root")
    %{store: store} = ObjectStoreX.Test.isolated_store(ctx())

    assert %Store{backend: :local, root: root, prefix: prefix} = store
    assert root == Path.join(dir, "root")
    assert prefix =~ ~r"\AObjectStoreX.KitConfigTest/test-some-thing-[0-9a-f]{10}\z"

    :ok = ObjectStoreX.put(store, "k", "v")
    assert File.read!(Path.join([root, prefix, "k"])) == "v"
    assert :ok = ObjectStoreX.Test.cleanup!(store)
    refute File.exists?(Path.join(root, prefix))
  end

  test "application configuration, with options merged in order", %{dir: dir} do
    Application.put_env(:objectstorex, :test_store, {"file://#{dir}/a", prefix: "ci"})
    Application.put_env(:objectstorex, :test_store_options, root: Path.join(dir, "b"))

    %{store: store} = ObjectStoreX.Test.isolated_store(ctx())
    # :test_store_options override the URL's root; the test's prefix is below the store's own
    assert store.root == Path.join(dir, "b")
    assert store.prefix =~ ~r"\Aci/ObjectStoreX.KitConfigTest/"

    %{store: store} =
      ObjectStoreX.Test.isolated_store(ctx(), options: [root: Path.join(dir, "c")])

    assert store.root == Path.join(dir, "c")
  end

  test "the environment variable wins over the configuration, a tag over both, the option over all",
       %{dir: dir} do
    Application.put_env(:objectstorex, :test_store, "file://#{dir}/config")
    System.put_env(@env, "file://#{dir}/env")
    assert ObjectStoreX.Test.isolated_store(ctx()).store.root == Path.join(dir, "env")

    tagged = ctx(%{objectstorex_store: {:local, root: Path.join(dir, "tag")}})
    assert ObjectStoreX.Test.isolated_store(tagged).store.root == Path.join(dir, "tag")

    assert %Store{backend: :memory} =
             ObjectStoreX.Test.isolated_store(tagged, store: "memory://").store
  end

  test "test names become valid, bounded path segments" do
    long = String.duplicate("x", 250)

    for name <- [:"test a/b/../c", :"test ü ñ 🎉", :., :.., :"", String.to_atom(long)] do
      unique = ObjectStoreX.Test.unique(ctx(%{test: name}))
      assert [module, test] = String.split(unique, "/")
      assert module == "ObjectStoreX.KitConfigTest"
      assert test =~ ~r/\A[A-Za-z0-9._-]+-[0-9a-f]{10}\z/
      refute test =~ ~r/\A\.+-/
      assert byte_size(test) <= 111
      assert {:ok, _} = ObjectStoreX.Store.new(:memory, prefix: unique)
    end

    refute ObjectStoreX.Test.unique(ctx()) == ObjectStoreX.Test.unique(ctx())
  end

  test "a bad store or option is refused by name" do
    assert_raise Error, ~r/the test store must be a URL/, fn ->
      ObjectStoreX.Test.isolated_store(ctx(), store: 42)
    end

    assert_raise Error, ~r/unknown option :stor/, fn ->
      ObjectStoreX.Test.isolated_store(ctx(), stor: :memory)
    end

    assert_raise Error, ~r/unsupported URL/, fn ->
      ObjectStoreX.Test.isolated_store(ctx(), store: "ftp://x")
    end
  end

  test "a test's objects are removed when it fails or raises", %{dir: dir} do
    # A real ExUnit run in a child VM: its tests write, then fail; their cleanup must still run.
    code = """
    ExUnit.start(autorun: false)

    defmodule ChildTest do
      use ObjectStoreX.Case
      @moduletag objectstorex_store: {:local, root: #{inspect(dir)}}

      test "fails after writing", %{store: store} do
        :ok = ObjectStoreX.put(store, "a/b.txt", "x")
        true = File.exists?(Path.join([store.root, store.prefix, "a/b.txt"]))
        IO.puts("WROTE " <> store.prefix)
        flunk("on purpose")
      end

      test "raises after writing", %{store: store} do
        :ok = ObjectStoreX.Stream.upload([String.duplicate("y", 6_000_000)], store, "big", part_size: 5_242_880)
        IO.puts("WROTE " <> store.prefix)
        raise "boom"
      end
    end

    IO.puts("RESULT " <> inspect(ExUnit.run()))
    """

    {output, 0} = in_child_vm(code)
    assert output =~ "RESULT %{excluded: 0, failures: 2, skipped: 0, total: 2}"
    assert [_, _] = Regex.scan(~r/WROTE (\S+)/, output)
    assert Path.wildcard(Path.join(dir, "**/*")) |> Enum.filter(&File.regular?/1) == []
  end
end
